//! `ferry restore create --storage …`: a restore run here, without a service.
//! (Being built.)

use crate::backup_cmd::RestoreCmd;
use crate::client::ClientOpts;
use anyhow::Result;

/// Runs a direct restore.
pub async fn run(_client: &ClientOpts, _cmd: RestoreCmd) -> Result<std::process::ExitCode> {
    anyhow::bail!("direct restores are being built")
}
