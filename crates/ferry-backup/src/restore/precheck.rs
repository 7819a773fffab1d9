//! The restore precheck: everything that can be known before a row is written —
//! the chain complete, every file there with its size and SHA-256, the format
//! readable, the target reachable and empty where it must be, every table's types
//! mappable onto the target engine. Each failure says what is wrong and how to fix it.

use super::{failed, manifest_engine, restore_spec, RestorePlan, RestoreRequest};
use crate::layout;
use crate::manifest::{FileEntry, FileKind, Manifest, SetKind};
use crate::repo::Repo;
use ferry_core::{Engine, Error, ExistingData, Result, Table, TableId, TaskSpec};
use ferry_engine::checkpoint::{CheckpointStore, TaskPhase};
use ferry_engine::conn::Conn;
use ferry_engine::schema::mapping::{plan_ddl, Ddl, NameMap};
use futures::StreamExt;

/// Most problems listed in one precheck failure (the rest are counted).
const MAX_LISTED: usize = 20;

/// One file a table's restore goes through, in order.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// Index of its set in the chain (0: the full set).
    pub set: usize,
    /// The file.
    pub file: FileEntry,
}

/// One table of a restore: where it lands, its DDL, its files in the order they
/// are applied (the full set's data files, then every changes file of the chain).
#[derive(Debug, Clone)]
pub struct RestoreTable {
    /// Index of the table in the full set's manifest.
    pub index: usize,
    /// The table as the source described it.
    pub table: Table,
    /// Target table.
    pub target: TableId,
    /// Its DDL on the target.
    pub ddl: Ddl,
    /// Its files, in order; a file's position is its chunk index in the restore's
    /// checkpoint plan.
    pub files: Vec<PlannedFile>,
    /// The full set's digest of the table (hex), when it has one.
    pub digest: Option<String>,
    /// Rows of the full set's data files.
    pub data_rows: u64,
}

/// The sets from the full one to `id`, full first; a missing parent is named.
pub async fn resolve_chain(repo: &Repo, id: &str) -> Result<Vec<Manifest>> {
    let first = repo.find_set(id).await.map_err(|e| {
        failed(
            format!("set {id}: {}", e.message),
            "`ferry backup list --storage …` shows the complete sets of the repository",
        )
    })?;
    let mut chain = vec![first];
    loop {
        let last = chain.last().expect("the chain has a set");
        check_format(last)?;
        if last.kind == SetKind::Full {
            break;
        }
        let Some(parent) = last.parent.clone() else {
            return Err(failed(
                format!("set {}: an incremental set without a parent", last.id),
                "the manifest is damaged: restore an earlier set",
            ));
        };
        if chain.len() > 10_000 || chain.iter().any(|m| m.id == parent) {
            return Err(failed(
                format!("set {}: its chain loops back to {parent}", last.id),
                "the repository is damaged: restore from a full set",
            ));
        }
        match repo.find_set(&parent).await {
            Ok(m) => chain.push(m),
            Err(e) => {
                return Err(failed(
                    format!(
                        "set {id}: its chain needs set {parent} (the parent of {}), which the repository lacks: {}",
                        last.id, e.message
                    ),
                    "an incremental set restores only on its whole chain: copy the missing set back \
                     (from a secondary storage), or restore an earlier set whose chain is complete",
                ))
            }
        }
    }
    chain.reverse();
    Ok(chain)
}

/// Refuses a manifest of a newer format than this Ferry reads.
fn check_format(m: &Manifest) -> Result<()> {
    if m.format > layout::FORMAT {
        return Err(failed(
            format!(
                "set {}: written in repository format {} but this Ferry reads format {} at most",
                m.id,
                m.format,
                layout::FORMAT
            ),
            "restore with a newer Ferry",
        ));
    }
    if m.method != "logical" {
        return Err(failed(
            format!(
                "set {}: backup method {:?} is not restorable by this Ferry",
                m.id, m.method
            ),
            "restore with a newer Ferry",
        ));
    }
    Ok(())
}

/// What is wrong with one stored file, if anything.
async fn check_file(repo: &Repo, m: &Manifest, f: &FileEntry) -> Option<String> {
    let path = format!("{}/{}", layout::set_dir(&m.cluster, &m.id), f.path);
    let name = format!("set {}: file {}", m.id, f.path);
    match repo.storage.get(&path).await {
        Ok(None) => Some(format!("{name} is missing")),
        Ok(Some(b)) if b.len() as u64 != f.bytes => Some(format!(
            "{name} has {} bytes, the manifest says {} (truncated or replaced)",
            b.len(),
            f.bytes
        )),
        Ok(Some(b)) => {
            let sum = tokio::task::spawn_blocking(move || crate::codec::sha256_hex(&b))
                .await
                .unwrap_or_default();
            (!sum.eq_ignore_ascii_case(&f.sha256)).then(|| {
                format!(
                    "{name}: checksum mismatch (SHA-256 {sum}, the manifest says {})",
                    f.sha256
                )
            })
        }
        Err(e) => Some(format!("{name} cannot be read: {}", e.message)),
    }
}

/// Checks every file of every set of `chain` (`parallel` at a time); every missing
/// or damaged file is named.
pub async fn check_files(repo: &Repo, chain: &[Manifest], parallel: usize) -> Result<()> {
    let all: Vec<(&Manifest, &FileEntry)> = chain
        .iter()
        .flat_map(|m| m.files.iter().map(move |f| (m, f)))
        .collect();
    // the futures are made before they are streamed (not by a closure inside the
    // stream), so the precheck's future is `Send` and runs on any worker
    let checks: Vec<_> = all
        .into_iter()
        .map(|(m, f)| check_file(repo, m, f))
        .collect();
    let mut problems: Vec<String> = futures::stream::iter(checks)
        .buffered(parallel.max(1))
        .filter_map(futures::future::ready)
        .collect()
        .await;
    if problems.is_empty() {
        return Ok(());
    }
    let total = problems.len();
    problems.truncate(MAX_LISTED);
    let mut text = problems.join("\n  ");
    if total > MAX_LISTED {
        text.push_str(&format!("\n  … and {} more", total - MAX_LISTED));
    }
    let sets: Vec<&str> = chain.iter().map(|m| m.id.as_str()).collect();
    Err(failed(
        text,
        &format!(
            "the set is damaged and cannot be restored as it is: restore another set, or copy \
             the set back from its secondary storage; `ferry backup verify {}` lists every damaged file",
            sets.last().copied().unwrap_or_default()
        ),
    ))
}

/// The selected tables of a chain, each with its target, DDL and files in order.
/// Mapping failures are reported together.
pub fn plan_tables(
    chain: &[Manifest],
    spec: &TaskSpec,
    from: Engine,
    warnings: &mut Vec<String>,
) -> Result<Vec<RestoreTable>> {
    let full = &chain[0];
    let selected: Vec<(usize, &crate::manifest::TableEntry)> = full
        .tables
        .iter()
        .enumerate()
        .filter(|(_, t)| spec.objects.matches(&t.table.id.schema, &t.table.id.name))
        .collect();
    if selected.is_empty() {
        return Err(failed(
            format!(
                "set {}: no table of the set matches --include/--exclude (the set holds {})",
                full.id,
                full.tables
                    .iter()
                    .map(|t| t.table.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "check the patterns: `ferry backup show SET` lists the set's tables",
        ));
    }
    let models: Vec<Table> = selected.iter().map(|(_, t)| t.table.clone()).collect();
    let names = NameMap::new(spec, &models);
    let to = spec.target.engine;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, t) in &selected {
        let create_text = if from == to {
            t.create_text.as_deref()
        } else {
            None
        };
        match plan_ddl(&t.table, from, to, &names, create_text) {
            Ok(ddl) => {
                warnings.extend(ddl.warnings.iter().cloned());
                out.push(RestoreTable {
                    index: *i,
                    table: t.table.clone(),
                    target: names.target(&t.table.id),
                    ddl,
                    files: Vec::new(),
                    digest: t.digest.clone(),
                    data_rows: 0,
                })
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(failed(
            format!(
                "the set's tables cannot be created on the {to} target:\n  {}",
                errors.join("\n  ")
            ),
            "exclude those tables (--exclude), or restore into a database of the set's own engine \
             and migrate from there (docs/type-mapping.md lists what maps)",
        ));
    }
    // files: the full set's data files, then each set's changes files, in order
    for (s, m) in chain.iter().enumerate() {
        for f in &m.files {
            let Some(entry) = m.tables.get(f.table) else {
                return Err(failed(
                    format!(
                        "set {}: file {} names table #{} which the manifest lacks",
                        m.id, f.path, f.table
                    ),
                    "the manifest is damaged: restore another set",
                ));
            };
            let Some(rt) = out.iter_mut().find(|r| r.table.id == entry.table.id) else {
                if s > 0 && !full.tables.iter().any(|t| t.table.id == entry.table.id) {
                    warnings.push(format!(
                        "set {}: table {} is not in the full set {}; its changes are not restored",
                        m.id, entry.table.id, full.id
                    ));
                }
                continue;
            };
            if f.kind == FileKind::Data && s > 0 {
                return Err(failed(
                    format!("set {}: incremental set with a data file {}", m.id, f.path),
                    "the set was written by a newer Ferry: restore with a newer Ferry",
                ));
            }
            if f.kind == FileKind::Data {
                rt.data_rows += f.rows;
            }
            rt.files.push(PlannedFile {
                set: s,
                file: f.clone(),
            });
        }
    }
    for rt in &mut out {
        // data first (in file order), then changes in chain order
        rt.files
            .sort_by_key(|p| (p.file.kind == FileKind::Changes, p.set));
    }
    Ok(out)
}

/// The precheck of a restore of set `id`.
pub async fn precheck_set(repo: &Repo, req: &RestoreRequest, id: &str) -> Result<RestorePlan> {
    let chain = resolve_chain(repo, id).await?;
    precheck_chain(repo, req, chain, true).await
}

/// The precheck of a restore of `chain` (full set first); `target` false leaves
/// the target's checks to the caller (a point-in-time restore, whose target
/// states differ: see [`super::pitr`]).
pub async fn precheck_chain(
    repo: &Repo,
    req: &RestoreRequest,
    chain: Vec<Manifest>,
    target: bool,
) -> Result<RestorePlan> {
    let from = manifest_engine(&chain[0])?;
    for m in &chain[1..] {
        if manifest_engine(m)? != from {
            return Err(failed(
                format!("set {}: its chain mixes engines", m.id),
                "the repository is damaged: restore the full set alone",
            ));
        }
    }
    let mut warnings = Vec::new();
    check_files(repo, &chain, req.jobs.max(1) * 2).await?;
    let spec = restore_spec(req, from);
    let tables = plan_tables(&chain, &spec, from, &mut warnings)?;
    if target {
        check_target(&spec, &tables, &mut warnings).await?;
    }
    if chain.len() > 1 {
        warnings.push(format!(
            "an incremental chain of {} sets: its final state has no digest; the restore checks row counts only — compare the restored database with its source (`ferry compare`) to be sure",
            chain.len()
        ));
    }
    Ok(RestorePlan {
        tables: tables.iter().map(|t| t.target.clone()).collect(),
        chain,
        warnings,
        ..Default::default()
    })
}

/// The target reachable, and its tables absent or empty unless `existing_data`
/// says what to do with them (an interrupted restore of the same name resumes).
pub async fn check_target(
    spec: &TaskSpec,
    tables: &[RestoreTable],
    warnings: &mut Vec<String>,
) -> Result<()> {
    let (mut dst, missing) = Conn::open_target_or_server(spec).await.map_err(|e| {
        failed(
            format!("target {} cannot be reached: {}", spec.target, e.message),
            "check the --target URL, that the server runs and that the user may log in \
             (the password comes from the URL or FERRY_TARGET_PASSWORD)",
        )
    })?;
    if let Some(db) = missing {
        warnings.push(format!(
            "the target database {db} does not exist yet: the restore creates it"
        ));
        return Ok(());
    }
    let models: Vec<Table> = tables.iter().map(|t| t.table.clone()).collect();
    let names = NameMap::new(spec, &models);
    ferry_engine::schema::target_name_clashes(&mut dst, &models, &names).await?;
    ferry_engine::schema::missing_extensions(&mut dst, &models).await?;
    let prior = dst.task(&spec.name).await.ok().flatten();
    match prior.map(|p| p.phase) {
        Some(TaskPhase::Done)
            if !matches!(
                spec.existing_data,
                ExistingData::Drop | ExistingData::Truncate
            ) =>
        {
            return Err(failed(
                format!(
                    "restore {} has already finished on {}",
                    spec.name, spec.target
                ),
                "to restore again use --existing-data drop, or give the restore another --name",
            ));
        }
        Some(TaskPhase::Done) | None => {}
        Some(_) => {
            warnings.push(format!(
                "restore {} was interrupted: it resumes, files already restored are skipped",
                spec.name
            ));
            return Ok(());
        }
    }
    if spec.existing_data != ExistingData::Fail {
        return Ok(());
    }
    let mut occupied = Vec::new();
    for t in tables {
        match dst.table_state(&t.target).await? {
            None => {}
            Some(true) => occupied.push(format!("{} (has rows)", t.target)),
            Some(false) => occupied.push(format!("{} (exists, empty)", t.target)),
        }
    }
    if !occupied.is_empty() {
        return Err(Error::definite(format!(
            "target not empty: {}",
            occupied.join(", ")
        ))
        .with_hint("--existing-data drop (recreate them), truncate, or append; or restore into an empty database"));
    }
    Ok(())
}
