//! Point-in-time restore: the newest set chain taken before the restore point,
//! then the archived transactions after it, up to the point — whole transactions,
//! exactly once, through the engine's change applier.

use super::{RestorePlan, RestoreReport, RestoreRequest, TableRestore};
use crate::log::RestorePoint;
use crate::repo::Repo;
use ferry_core::{Error, Result};

/// The precheck of a restore of `cluster` to `until`.
pub async fn precheck_pitr(
    repo: &Repo,
    req: &RestoreRequest,
    cluster: &str,
    until: &RestorePoint,
) -> Result<RestorePlan> {
    let _ = (repo, req, cluster, until);
    Err(Error::definite("point-in-time restore is not built yet"))
}

/// Restores what `plan` holds, then replays the archive to the point.
pub async fn restore_pitr(
    repo: &Repo,
    req: &RestoreRequest,
    plan: RestorePlan,
    progress: &(dyn Fn(&[TableRestore]) + Sync),
) -> Result<RestoreReport> {
    let _ = (repo, req, plan, progress);
    Err(Error::definite("point-in-time restore is not built yet"))
}
