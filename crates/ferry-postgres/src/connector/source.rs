//! A PostgreSQL session as a source of chunks.

use crate::PgConn;
use ferry_connector::ChunkSource;

impl ChunkSource for PgConn {}
