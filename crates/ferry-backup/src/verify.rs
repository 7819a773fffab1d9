//! `ferry backup verify`: every file of a set re-read and checked.
//!
//! Every file the manifest names is read back (its size and SHA-256 checked by the
//! repository), decoded, and its row or change count compared with the manifest;
//! every problem is collected with the file's name, so one run tells the whole
//! state of a set.

use crate::codec;
use crate::manifest::FileKind;
use crate::repo::Repo;
use ferry_core::Result;

/// What a verification found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// The set.
    pub set: String,
    /// Files checked.
    pub files: usize,
    /// Rows decoded.
    pub rows: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Each missing or damaged file, named, with what is wrong.
    pub problems: Vec<String>,
}

/// Verifies set `set` of `repo`.
pub async fn verify_set(repo: &Repo, set: &str) -> Result<VerifyReport> {
    let m = repo.find_set(set).await?;
    let mut report = VerifyReport {
        set: m.id.clone(),
        ..Default::default()
    };
    if m.method == crate::physical::METHOD {
        crate::physical::base::verify_files(repo, &m, &mut report).await;
        return Ok(report);
    }
    let mut per_table = vec![0u64; m.tables.len()];
    for f in &m.files {
        report.files += 1;
        let name = format!("{}/{}", m.id, f.path);
        if f.table >= m.tables.len() {
            report.problems.push(format!(
                "{name}: names table {} but the manifest has {} tables",
                f.table,
                m.tables.len()
            ));
            continue;
        }
        let stored = match repo.read_file(&m, f).await {
            Ok(b) => b,
            Err(e) => {
                report.problems.push(format!("{name}: {}", e.message));
                continue;
            }
        };
        report.bytes += stored.len() as u64;
        let count = match f.kind {
            FileKind::Data => {
                codec::read_rows(&stored, repo.cipher.as_ref(), &name).map(|r| r.len() as u64)
            }
            FileKind::Changes => {
                codec::read_changes(&stored, repo.cipher.as_ref(), &name).map(|c| c.len() as u64)
            }
        };
        match count {
            Ok(n) if n == f.rows => {
                report.rows += n;
                if f.kind == FileKind::Data {
                    per_table[f.table] += n;
                }
            }
            Ok(n) => report.problems.push(format!(
                "{name}: holds {n} {} but the manifest says {}",
                if f.kind == FileKind::Data {
                    "rows"
                } else {
                    "changes"
                },
                f.rows
            )),
            Err(e) => report
                .problems
                .push(format!("{name}: cannot be decoded: {}", e.message)),
        }
    }
    // a full set's tables hold exactly their files' rows
    if m.kind == crate::manifest::SetKind::Full && report.problems.is_empty() {
        for (t, n) in m.tables.iter().zip(&per_table) {
            if t.rows != *n {
                report.problems.push(format!(
                    "{}: table {} should have {} rows but its files hold {n}",
                    m.id, t.table.id, t.rows
                ));
            }
        }
    }
    Ok(report)
}
