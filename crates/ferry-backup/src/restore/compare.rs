//! The restored tables against the set's own digests: each table read back from the
//! target and digested as `ferry compare` digests a side (canonical values by column
//! type, order-independent), then compared with the digest the backup computed
//! while it read the source. A chain has no digest of its final state: row counts
//! are all a restore can check there.

use super::precheck::RestoreTable;
use crate::manifest::Manifest;
use ferry_core::select::ObjectFilter;
use ferry_core::{ExistingData, Result, Table, TaskSpec};
use ferry_engine::conn::Conn;

/// The restored table as read with the source's copied columns, in their order;
/// `Err(why)` when the target lacks the table or a column.
pub async fn aligned(
    dst: &mut Conn,
    t: &RestoreTable,
) -> Result<std::result::Result<Table, String>> {
    let found = dst
        .tables(&ObjectFilter::table(&t.target), Some(&t.target.schema))
        .await?;
    let Some(tt) = found.into_iter().find(|x| x.id == t.target) else {
        return Ok(Err(format!("{}: missing on the target", t.target)));
    };
    let mut a = tt.clone();
    a.columns.clear();
    for c in t.table.copied_columns() {
        match tt.column(&c.name) {
            Some(tc) => {
                let mut tc = tc.clone();
                tc.generated = None;
                a.columns.push(tc);
            }
            None => {
                return Ok(Err(format!(
                    "{}: column {} missing on the target",
                    t.target, c.name
                )))
            }
        }
    }
    Ok(Ok(a))
}

/// Parses a digest's hex text.
fn parse_hex(s: &str) -> Option<u128> {
    u128::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// Compares the restored tables with the full set's digests (a chain: notes that it
/// cannot). Returns the differences (empty: equal).
pub async fn compare_restored(
    dst: &mut Conn,
    chain: &[Manifest],
    tables: &[RestoreTable],
    spec: &TaskSpec,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>> {
    let mut differences = Vec::new();
    if spec.existing_data == ExistingData::Append {
        warnings.push(
            "existing_data append: the restored tables hold rows of their own, so they are not compared with the set's digests".into(),
        );
        return Ok(differences);
    }
    let chained = chain.len() > 1
        || chain[0]
            .files
            .iter()
            .any(|f| f.kind == crate::manifest::FileKind::Changes);
    for t in tables {
        let a = match aligned(dst, t).await? {
            Ok(a) => a,
            Err(why) => {
                differences.push(why);
                continue;
            }
        };
        let d = ferry_engine::compare::digest(dst, &a, None).await?;
        if chained {
            continue;
        }
        let rows = chain[0].tables[t.index].rows;
        if d.rows != rows {
            differences.push(format!(
                "{}: {} rows restored, the set holds {rows}",
                t.target, d.rows
            ));
            continue;
        }
        match t.digest.as_deref().map(|h| (h, parse_hex(h))) {
            Some((_, Some(sum))) if sum == d.sum => {}
            Some((_, Some(_))) => differences.push(format!(
                "{}: {} rows, as in the set, but their contents differ from the set's digest",
                t.target, d.rows
            )),
            Some((h, None)) => warnings.push(format!(
                "{}: the set's digest {h:?} is unreadable; only the row count was compared",
                t.target
            )),
            None => warnings.push(format!(
                "{}: the set has no digest of the table; only the row count was compared",
                t.target
            )),
        }
    }
    Ok(differences)
}
