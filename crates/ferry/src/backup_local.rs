//! `ferry backup now|list|show|verify --storage …`: backups and repository reads
//! run here, without a service. (Being built.)

use crate::backup_cmd::BackupCmd;
use crate::client::ClientOpts;
use anyhow::Result;

/// Runs one direct backup command on the repository at `storage`.
pub async fn run(
    _storage: &str,
    _client: &ClientOpts,
    _cmd: BackupCmd,
) -> Result<std::process::ExitCode> {
    anyhow::bail!("direct backups are being built")
}
