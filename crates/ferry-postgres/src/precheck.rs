//! What `ferry check` asks a PostgreSQL server.

use crate::conn::{classify, PgConn};
use ferry_core::{check::Item, Result};

/// Server version, e.g. `15.19`.
pub async fn version(conn: &PgConn) -> Result<(String, i32)> {
    let r = conn
        .client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(classify)?;
    Ok((r.get(0), r.get(1)))
}

/// Checks a source's settings for the incremental phase and its privileges. `own_slot`:
/// the task's slot, when it exists already (its stream resumes from it, so a full
/// source needs no free slot).
pub async fn source_checks(conn: &PgConn, own_slot: Option<&str>) -> Result<Vec<Item>> {
    let c = &conn.client;
    let mut items = Vec::new();
    let (v, num) = version(conn).await?;
    items.push(Item::new(
        "source version",
        num >= 130000,
        format!("PostgreSQL {v}"),
        "Ferry supports PostgreSQL 13 and newer",
    ));
    let r = c
        .query_one(
            "SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int, \
             (SELECT count(*) FROM pg_replication_slots)::int, \
             (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .await
        .map_err(classify)?;
    let wal: String = r.get(0);
    items.push(
        Item::new(
            "source wal_level=logical (for incremental)",
            wal == "logical",
            format!("wal_level={wal}"),
            "set wal_level = logical in postgresql.conf and restart PostgreSQL",
        )
        .for_stream(),
    );
    let (max, used): (i32, i32) = (r.get(1), r.get(2));
    let mut slots = Item::new(
        "source free replication slot (for incremental)",
        used < max,
        format!("{used} of {max} slots used"),
        "raise max_replication_slots or drop unused slots (SELECT pg_drop_replication_slot(name))",
    )
    .for_stream();
    if let (Some(slot), false) = (own_slot, slots.ok) {
        slots = slots.warning();
        slots.stream_only = false;
        slots.detail = format!(
            "{}, one of them the task's own {slot}: its stream resumes from it (a resumed copy \
             needs one more, for a moment)",
            slots.detail
        );
    }
    items.push(slots);
    items.push(wal_keep(conn).await?);
    let repl: bool = r.get(3);
    items.push(
        Item::new(
            "source REPLICATION privilege (for incremental)",
            repl,
            if repl { "granted" } else { "missing" },
            "ALTER ROLE <user> REPLICATION",
        )
        .for_stream(),
    );
    Ok(items)
}

/// What the source does with a slot that falls behind: `max_slot_wal_keep_size`
/// (unlimited: a stalled task's slot can fill the disk; limited: a slot past it is
/// invalidated and its task needs a full resync), with `wal_keep_size` beside it.
pub async fn wal_keep(conn: &PgConn) -> Result<Item> {
    let r = conn
        .client
        .query_one(
            "SELECT current_setting('max_slot_wal_keep_size'), \
                    pg_size_bytes(current_setting('max_slot_wal_keep_size'))::bigint, \
                    current_setting('wal_keep_size')",
            &[],
        )
        .await
        .map_err(classify)?;
    let (text, bytes, keep): (String, i64, String) = (r.get(0), r.get(1), r.get(2));
    let name = "source max_slot_wal_keep_size (for incremental)";
    Ok(if bytes < 0 {
        Item::new(
            name,
            false,
            format!(
                "max_slot_wal_keep_size = -1 (unlimited), wal_keep_size = {keep}: a stalled task's \
                 slot can fill the disk; set max_slot_wal_keep_size"
            ),
            "set max_slot_wal_keep_size (postgresql.conf, reload) below the WAL disk's free \
             space; Ferry warns before a slot gets there (source_protection.max_retained_wal)",
        )
        .warning()
    } else {
        Item::new(
            name,
            true,
            format!(
                "max_slot_wal_keep_size = {text}, wal_keep_size = {keep}: a slot further behind \
                 than that is invalidated and its task needs a full resync"
            ),
            "",
        )
    })
}
