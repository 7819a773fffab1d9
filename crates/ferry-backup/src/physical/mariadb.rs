//! MySQL/MariaDB physical backups go through `mariadb-backup` (Debian package
//! `mariadb-backup`), run on the machine Ferry runs on. Without it, the physical
//! method says so and how to install it.

use crate::manifest::Manifest;
use crate::repo::Repo;
use ferry_core::{Endpoint, Error, Result};
use std::path::PathBuf;

/// The `mariadb-backup` (or older `mariabackup`) executable on `PATH`.
pub fn find_tool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["mariadb-backup", "mariabackup"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The error when `mariadb-backup` is not installed.
pub fn not_installed() -> Error {
    Error::definite(
        "a physical backup of MySQL/MariaDB needs mariadb-backup, which is not installed on this machine",
    )
    .with_hint(
        "install it (Debian/Ubuntu: apt-get install mariadb-backup) on the machine running Ferry, or use --method logical",
    )
}

/// A physical backup of a MySQL/MariaDB source.
pub async fn backup(
    repo: &Repo,
    cluster: &str,
    source: &Endpoint,
    quiet: bool,
) -> Result<Manifest> {
    let _ = (repo, cluster, quiet);
    let Some(tool) = find_tool() else {
        return Err(not_installed());
    };
    Err(Error::definite(format!(
        "{source}: physical backups of MySQL/MariaDB through {} are not built yet",
        tool.display()
    ))
    .with_hint("use --method logical for this server"))
}
