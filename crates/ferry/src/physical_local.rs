//! `ferry restore create --data-dir DIR …`: a physical restore (a PostgreSQL data
//! directory that recovers to a point from Ferry's WAL archive).

use crate::backup_cmd::RestoreCmd;
use crate::client::ClientOpts;
use anyhow::Result;

/// Runs a physical restore.
pub async fn restore(_client: &ClientOpts, _cmd: RestoreCmd) -> Result<std::process::ExitCode> {
    anyhow::bail!("physical restore is not built yet")
}
