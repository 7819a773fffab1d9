//! A MySQL/MariaDB session as a source of chunks.

use crate::MyConn;
use ferry_connector::ChunkSource;

impl ChunkSource for MyConn {}
