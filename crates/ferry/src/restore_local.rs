//! `ferry restore create --storage …` (and `--from-dump …`): a restore run here,
//! without a service. It prints the precheck's verdict (a failure with its reason
//! and fix, exit code 2), per-table progress, then the comparison with the set's
//! digests (exit 0 equal, 1 different or failed). Running the same command again
//! resumes an interrupted restore. With `--until POINT`, `--from` names a cluster:
//! its newest set chain before the point, then its log archive replayed up to the
//! point (no digest to compare there: exit 0 once the point is reached).

use crate::backup_cmd::RestoreCmd;
use crate::client::ClientOpts;
use anyhow::Result;
use ferry_backup::log::RestorePoint;
use ferry_backup::repo::{Repo, KEY_ENV};
use ferry_backup::restore::{
    default_name, precheck, run_restore, RestoreFrom, RestoreRequest, TableRestore,
};
use ferry_core::select::ObjectFilter;
use ferry_core::{Endpoint, ExistingData};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Prints a failure of the precheck (its reason and fix) and gives exit code 2.
fn precheck_failed(e: &ferry_core::Error) -> ExitCode {
    println!("precheck_failed: {}", e.message);
    if let Some(h) = &e.hint {
        println!("  hint: {h}");
    }
    ExitCode::from(2)
}

/// What `--existing-data` says.
fn existing_data(s: &str) -> Result<ExistingData> {
    Ok(match s {
        "fail" => ExistingData::Fail,
        "drop" => ExistingData::Drop,
        "truncate" => ExistingData::Truncate,
        "append" => ExistingData::Append,
        other => anyhow::bail!("--existing-data {other:?}: use fail, drop, truncate or append"),
    })
}

/// Runs a direct restore.
pub async fn run(_client: &ClientOpts, cmd: RestoreCmd) -> Result<ExitCode> {
    let RestoreCmd::Create {
        from,
        from_dump,
        target,
        include,
        exclude,
        existing_data: existing,
        name,
        jobs,
        quiet,
        direct,
        until,
        data_dir: _,
    } = cmd
    else {
        anyhow::bail!("only `ferry restore create` runs without a service");
    };
    let Some(target) = target else {
        anyhow::bail!("give the database to restore into with --target");
    };
    let target = Endpoint::parse(&target, "FERRY_TARGET_PASSWORD")?;
    let objects = ObjectFilter::new(&include, &exclude)?;
    let (from, repo) = match (from, from_dump) {
        (Some(set), _) => {
            let Some(storage) = direct.storage else {
                anyhow::bail!(
                    "--from {} needs --storage (the repository holding it)",
                    if until.is_some() {
                        "CLUSTER --until"
                    } else {
                        "SET"
                    }
                );
            };
            // a point in time is read before the repository is opened: a bad one
            // is the user's to fix, whatever the storage says
            let point = match until.as_deref().map(RestorePoint::parse).transpose() {
                Ok(p) => p,
                Err(e) => return Ok(precheck_failed(&e)),
            };
            let key = std::env::var(KEY_ENV).ok().filter(|k| !k.is_empty());
            let repo = match Repo::open(&storage, key.as_deref()).await {
                Ok(r) => r,
                Err(e) => return Ok(precheck_failed(&e)),
            };
            let from = match point {
                // --from is then the cluster
                Some(until) => RestoreFrom::PointInTime {
                    cluster: set,
                    until,
                },
                None => RestoreFrom::Set(set),
            };
            (from, Some(repo))
        }
        (None, Some(url)) => (RestoreFrom::Dump(url), None),
        (None, None) => anyhow::bail!("give --from SET or --from-dump URL"),
    };
    let name = name.unwrap_or_else(|| match &from {
        RestoreFrom::Set(id) => default_name(id),
        RestoreFrom::Dump(_) => "restore-dump".to_string(),
        RestoreFrom::PointInTime { cluster, .. } => default_name(&format!("{cluster}-pitr")),
    });
    let req = RestoreRequest {
        name,
        from,
        target,
        objects,
        existing_data: existing_data(&existing)?,
        jobs: jobs
            .map(usize::from)
            .unwrap_or_else(ferry_engine::default_jobs)
            .max(1),
        quiet,
    };
    let what = match &req.from {
        RestoreFrom::Set(id) => format!("set {id}"),
        RestoreFrom::Dump(url) => format!("dump {url}"),
        RestoreFrom::PointInTime { cluster, until } => format!("cluster {cluster} at {until}"),
    };
    println!("restore {}: {what} into {}", req.name, req.target);
    let plan = match precheck(repo.as_ref(), &req).await {
        Ok(p) => p,
        Err(e) => return Ok(precheck_failed(&e)),
    };
    if plan.chain.is_empty() {
        println!("precheck: passed");
    } else {
        let files: usize = plan.chain.iter().map(|m| m.files.len()).sum();
        println!(
            "precheck: passed — chain {} ({} file(s) checked), {} table(s)",
            plan.chain
                .iter()
                .map(|m| format!("{} ({})", m.id, m.kind.as_str()))
                .collect::<Vec<_>>()
                .join(" → "),
            files,
            plan.tables.len()
        );
    }
    for w in &plan.warnings {
        println!("  warning: {w}");
    }

    // progress: a line per finished table, and a summary every few seconds
    let state = Mutex::new((Instant::now(), Vec::<String>::new()));
    let quiet = req.quiet;
    let show = |tables: &[TableRestore]| {
        if quiet {
            return;
        }
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        for t in tables.iter().filter(|t| t.done) {
            if !st.1.contains(&t.table) {
                st.1.push(t.table.clone());
                println!("  {}: restored ({} rows)", t.table, t.rows_done);
            }
        }
        if st.0.elapsed() >= Duration::from_secs(5) {
            st.0 = Instant::now();
            let (d, n): (u64, u64) = tables
                .iter()
                .fold((0, 0), |(d, n), t| (d + t.rows_done, n + t.rows_total));
            println!(
                "  restoring: {d}/{n} rows, {}/{} tables done",
                tables.iter().filter(|t| t.done).count(),
                tables.len()
            );
        }
    };
    let report = match run_restore(repo.as_ref(), &req, plan, &show).await {
        Ok(r) => r,
        Err(e) => {
            println!("failed: {}", e.message);
            if let Some(h) = &e.hint {
                println!("  hint: {h}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    if report.resumed {
        println!(
            "resumed an interrupted restore: {} file(s) already restored were skipped",
            report.files_skipped
        );
    }
    for w in &report.warnings {
        println!("  warning: {w}");
    }
    println!(
        "restored {} row(s) into {} table(s) in {:.1}s",
        report.rows,
        report.tables.len(),
        report.seconds
    );
    if matches!(req.from, RestoreFrom::PointInTime { .. }) {
        // the set's tables were compared with its digests before the replay (a
        // difference is reported above); the point itself has no digest
        if !report.differences.is_empty() {
            println!(
                "compare: {} difference(s) from the set before the replay:",
                report.differences.len()
            );
            for d in &report.differences {
                println!("  {d}");
            }
            println!("failed: the restored set differs from its digests");
            return Ok(ExitCode::from(1));
        }
        println!("succeeded");
        return Ok(ExitCode::SUCCESS);
    }
    if matches!(req.from, RestoreFrom::Dump(_)) {
        for t in &report.tables {
            println!("  {}: {} rows", t.table, t.rows_done);
        }
        println!("succeeded");
        return Ok(ExitCode::SUCCESS);
    }
    if report.differences.is_empty() {
        println!("compare: equal");
        println!("succeeded");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "compare: {} difference(s) from the set:",
            report.differences.len()
        );
        for d in &report.differences {
            println!("  {d}");
        }
        println!("failed: the restored data differs from the set");
        Ok(ExitCode::from(1))
    }
}
