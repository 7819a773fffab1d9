//! Disaster-recovery switches: making a database read-only or writable again, the
//! way a DBA fences an old primary — and a DR standby for as long as it is one (a
//! row an application wrote there would reach neither the primary nor, after a
//! switchover, the reverse stream). How an engine fences is its connector's
//! [`ferry_connector::Fencing`]; Ferry's own sessions still write to a fenced
//! database, so it still receives the reversed stream.

pub mod switch;

use crate::factory::connector;
use ferry_core::{Endpoint, Error, Result, TaskSpec};
use std::time::Duration;

/// Fences (`on`) or unfences the database of `ep`.
pub async fn set_read_only(ep: &Endpoint, on: bool) -> Result<()> {
    connector(ep.engine).set_read_only(ep, on).await
}

/// The name of the task's replication slot (and publication) on its source (empty
/// when the source's engine keeps none).
pub fn slot_of(spec: &TaskSpec) -> String {
    connector(spec.source.engine)
        .slot_name(spec)
        .unwrap_or_default()
}

/// After a failover: drops the task's replication slot and publication on the old
/// primary, which may be gone — a few short tries (a stopped stream's walsender
/// lets go of the slot within moments). Without it the old primary would keep WAL
/// for a slot nobody reads. Nothing to do for a source that keeps no slot.
pub async fn release_old_primary(spec: &TaskSpec) -> Result<()> {
    let capture = connector(spec.source.engine);
    if capture.slot_name(spec).is_none() {
        return Ok(());
    }
    let mut last = None;
    for _ in 0..5 {
        let attempt = async {
            match capture.task_slot(spec).await? {
                Some(slot) => slot.drop_all().await,
                None => Ok(()),
            }
        };
        match tokio::time::timeout(Duration::from_secs(3), attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) if e.is_transient() => last = Some(e),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::transient("no answer within 3 s")),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(last.unwrap_or_else(|| Error::transient("the slot stayed in use")))
}
