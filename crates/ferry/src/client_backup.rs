//! `ferry backup …` / `ferry restore …` against a running service (REST API).
//! (Being built.)

use crate::backup_cmd::{BackupCmd, RestoreCmd};
use crate::client::ClientOpts;
use anyhow::Result;

/// Runs a backup command on the service.
pub async fn backup(_client: &ClientOpts, _cmd: BackupCmd) -> Result<std::process::ExitCode> {
    anyhow::bail!("backups on the service are being built")
}

/// Runs a restore command on the service.
pub async fn restore(_client: &ClientOpts, _cmd: RestoreCmd) -> Result<std::process::ExitCode> {
    anyhow::bail!("restores on the service are being built")
}
