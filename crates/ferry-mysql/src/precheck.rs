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
