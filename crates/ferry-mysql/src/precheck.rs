//! What `ferry check` asks a MySQL/MariaDB server.

use crate::conn::MyConn;
use ferry_core::{check::Item, Result};

fn item(name: &str, ok: bool, detail: String, fix: &str, warn: bool) -> Item {
    let i = Item::new(name, ok, detail, fix);
    if warn {
        i.warning()
    } else {
        i
    }
}

/// Server version text (`10.11.19-MariaDB…`).
pub async fn version(conn: &mut MyConn) -> Result<String> {
    let r = conn.query_text("SELECT VERSION()").await?;
    Ok(r.into_iter()
        .next()
        .and_then(|r| r[0].clone())
        .unwrap_or_default())
}

/// Source settings the incremental phase needs, and the snapshot privilege.
pub async fn source_checks(conn: &mut MyConn) -> Result<Vec<Item>> {
    let v = version(conn).await?;
    let mut items = vec![item("source version", true, v.clone(), "", false)];
    let is_maria = v.to_ascii_lowercase().contains("mariadb");
    let vars = conn
        .query_text(
            "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id, \
             COALESCE(@@binlog_row_metadata, '')",
        )
        .await
        .unwrap_or_default();
    let r = vars.into_iter().next().unwrap_or_default();
    let g = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    let cnf = "(my.cnf [mysqld]) and restart";
    items.push(
        item(
            "source log_bin=ON (for incremental)",
            g(0) == "1",
            format!("log_bin={}", g(0)),
            &format!("set log_bin=ON {cnf}"),
            true,
        )
        .for_stream(),
    );
    items.push(
        item(
            "source binlog_format=ROW (for incremental)",
            g(1) == "ROW",
            format!("binlog_format={}", g(1)),
            &format!("set binlog_format=ROW {cnf}"),
            true,
        )
        .for_stream(),
    );
    items.push(
        item(
            "source binlog_row_image=FULL (for incremental)",
            g(2) == "FULL",
            format!("binlog_row_image={}", g(2)),
            &format!("set binlog_row_image=FULL {cnf}"),
            true,
        )
        .for_stream(),
    );
    items.push(item(
        "source binlog_row_metadata=FULL (for incremental)",
        g(4) == "FULL",
        format!("binlog_row_metadata={}", g(4)),
        &format!("set binlog_row_metadata=FULL {cnf}"),
        true,
    ));
    items.push(item(
        "source server_id set",
        g(3) != "0",
        format!("server_id={}", g(3)),
        &format!("set server_id to a unique non-zero value {cnf}"),
        true,
    ));
    if g(0) == "1" {
        items.push(binlog_expiry(conn).await?.item());
    }
    let grants = conn.query_text("SHOW GRANTS").await.unwrap_or_default();
    let all: String = grants
        .iter()
        .map(|r| r[0].clone().unwrap_or_default().to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(" ");
    let has = |p: &str| all.contains("ALL PRIVILEGES ON *.*") || all.contains(p);
    items.push(item(
        "source RELOAD privilege (consistent snapshot)",
        has("RELOAD"),
        if has("RELOAD") {
            "granted".into()
        } else {
            "missing".into()
        },
        "GRANT RELOAD, LOCK TABLES ON *.* TO <user> (without it MariaDB sources are copied by one worker; MySQL sources need it)",
        true,
    ));
    items.push(
        item(
            "source REPLICATION SLAVE/CLIENT privileges (for incremental)",
            has("REPLICATION SLAVE") || (is_maria && has("BINLOG MONITOR")),
            String::new(),
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO <user>",
            true,
        )
        .for_stream(),
    );
    Ok(items)
}

/// How long the source keeps binlogs: `binlog_expire_logs_seconds` (MySQL 8,
/// MariaDB 10.6+) and `expire_logs_days` (older servers; MariaDB 10.11 has both,
/// kept in step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinlogExpiry {
    /// `binlog_expire_logs_seconds`, when the server has it.
    pub expire_seconds: Option<u64>,
    /// `expire_logs_days`, when the server has it.
    pub expire_days: Option<f64>,
}

impl BinlogExpiry {
    /// Seconds after which binlogs are purged; `None`: never (both 0).
    pub fn seconds(&self) -> Option<u64> {
        match (self.expire_seconds, self.expire_days) {
            (Some(s), _) if s > 0 => Some(s),
            (_, Some(d)) if d > 0.0 => Some((d * 86_400.0) as u64),
            _ => None,
        }
    }

    /// The `ferry check` line: a warning when binlogs are never purged (the disk
    /// fills), the retention otherwise (a task stopped longer needs a full resync).
    pub fn item(&self) -> Item {
        let vars = format!(
            "binlog_expire_logs_seconds = {}, expire_logs_days = {}",
            self.expire_seconds
                .map(|s| s.to_string())
                .unwrap_or("-".into()),
            self.expire_days
                .map(|d| d.to_string())
                .unwrap_or("-".into())
        );
        let name = "source binlog retention (for incremental)";
        match self.seconds() {
            None => item(
                name,
                false,
                format!("{vars}: binlogs are never purged automatically, so the source's disk fills unless a DBA purges them"),
                "set binlog_expire_logs_seconds (e.g. 604800 = 7 days) longer than a task may stay stopped or behind",
                true,
            ),
            Some(s) => item(
                name,
                true,
                format!(
                    "{vars}: binlogs are kept {}; a task stopped (or behind) longer than that \
                     finds its binlog purged and needs a full resync",
                    human_duration(s)
                ),
                "",
                false,
            ),
        }
    }
}

/// `90061` → `1 d 1 h` (the two largest units).
pub fn human_duration(secs: u64) -> String {
    let parts = [(86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")];
    let mut out = Vec::new();
    let mut rest = secs;
    for (size, unit) in parts {
        if rest >= size && out.len() < 2 {
            out.push(format!("{} {unit}", rest / size));
            rest %= size;
        } else if !out.is_empty() {
            break;
        }
    }
    if out.is_empty() {
        "0 s".into()
    } else {
        out.join(" ")
    }
}

/// Reads the source's binlog expiry settings (each may be missing on a version).
pub async fn binlog_expiry(conn: &mut MyConn) -> Result<BinlogExpiry> {
    let one = |rows: Vec<Vec<Option<String>>>| {
        rows.into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
    };
    let seconds = conn
        .query_text("SELECT @@binlog_expire_logs_seconds")
        .await
        .ok()
        .and_then(one)
        .and_then(|s| s.parse().ok());
    let days = conn
        .query_text("SELECT @@expire_logs_days")
        .await
        .ok()
        .and_then(one)
        .and_then(|s| s.parse().ok());
    Ok(BinlogExpiry {
        expire_seconds: seconds,
        expire_days: days,
    })
}

/// Target settings: LOAD DATA LOCAL must be allowed.
pub async fn target_checks(conn: &mut MyConn) -> Result<Vec<Item>> {
    let v = version(conn).await?;
    let r = conn
        .query_text("SELECT @@local_infile")
        .await
        .unwrap_or_default();
    let on = r
        .into_iter()
        .next()
        .and_then(|r| r[0].clone())
        .unwrap_or_default()
        == "1";
    Ok(vec![
        item("target version", true, v, "", false),
        item(
            "target local_infile=ON (bulk load)",
            on,
            format!("local_infile={}", if on { "ON" } else { "OFF" }),
            "SET GLOBAL local_infile = 1 (and local_infile=1 in my.cnf [mysqld])",
            false,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_expiry_prefers_seconds_and_zero_means_never() {
        let e = |s, d| BinlogExpiry {
            expire_seconds: s,
            expire_days: d,
        };
        assert_eq!(e(Some(3600), Some(0.0)).seconds(), Some(3600));
        assert_eq!(e(Some(0), Some(2.0)).seconds(), Some(172_800));
        assert_eq!(e(None, Some(0.5)).seconds(), Some(43_200));
        assert_eq!(e(Some(0), Some(0.0)).seconds(), None);
        let never = e(Some(0), Some(0.0)).item();
        assert!(!never.ok && never.warn_only, "{never:?}");
        assert!(never.detail.contains("never purged"), "{}", never.detail);
        let week = e(Some(604_800), Some(7.0)).item();
        assert!(
            week.ok && week.detail.contains("kept 7 d"),
            "{}",
            week.detail
        );
        assert_eq!(human_duration(90_061), "1 d 1 h");
        assert_eq!(human_duration(59), "59 s");
        assert_eq!(human_duration(3_600), "1 h");
    }
}
