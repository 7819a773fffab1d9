//! Restores: sets (full, and incremental chains) restored by `ferry restore create`
//! into the same and the other engine and proven equal to their source with
//! `ferry_engine::compare`; an interrupted restore resumes; a damaged or incomplete
//! set fails the precheck naming the file; dumps are imported with the engine's
//! client.

mod common;

use common::{fresh, text};
use ferry_backup::backup::{run_backup, BackupRequest};
use ferry_backup::manifest::{Manifest, SetKind};
use ferry_backup::repo::Repo;
use ferry_core::select::ObjectFilter;
use ferry_core::{Endpoint, TaskSpec};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases")
}

/// A restore name unique to this run (MariaDB keeps every database's checkpoints
/// in one `ferry` database of the server).
fn uname(hint: &str) -> String {
    ferry_testkit::unique_name(hint).replace('_', "-")
}

fn repo_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// Takes a backup of `source` into the repository at `dir`.
async fn backup(
    dir: &Path,
    key: Option<&str>,
    cluster: &str,
    source: &str,
    kind: SetKind,
) -> Manifest {
    let repo = Repo::create_or_open(&repo_url(dir), key)
        .await
        .unwrap_or_else(|e| panic!("repository: {e}"));
    let req = BackupRequest {
        cluster: cluster.into(),
        source: Endpoint::parse(source, "FERRY_TEST_UNSET_PASSWORD").unwrap(),
        objects: ObjectFilter::default(),
        kind,
        jobs: 2,
        chunk_rows: 2,
        quiet: true,
    };
    run_backup(&repo, &req)
        .await
        .unwrap_or_else(|e| panic!("backup of {source}: {e}"))
        .manifest
}

/// Runs `ferry restore create` with `args` (and the repository key, if any).
fn restore(key: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.args(["restore", "create"])
        .args(args)
        .env("FERRY_LOG", "warn");
    match key {
        Some(k) => c.env("FERRY_REPO_KEY", k),
        None => c.env_remove("FERRY_REPO_KEY"),
    };
    c.output().expect("run ferry")
}

/// Restores set `set` of the repository at `dir` into `target`; must succeed.
fn restore_ok(dir: &Path, key: Option<&str>, set: &str, target: &str, extra: &[&str]) -> String {
    let storage = repo_url(dir);
    let mut args = vec![
        "--from",
        set,
        "--target",
        target,
        "--storage",
        &storage,
        "--jobs",
        "2",
    ];
    args.extend_from_slice(extra);
    let out = restore(key, &args);
    let t = text(&out);
    assert!(out.status.success(), "restore of {set} failed:\n{t}");
    assert!(
        t.contains("compare: equal") || t.contains("succeeded"),
        "{t}"
    );
    t
}

/// `ferry compare`'s verdict between a source and the database restored from it.
async fn assert_equal(source: &str, target: &str) {
    assert_equal_objects(source, target, "").await
}

/// [`assert_equal`] with more task keys (`objects: …`).
async fn assert_equal_objects(source: &str, target: &str, extra: &str) {
    let spec = TaskSpec::from_yaml(&format!(
        "name: cmp\nkind: migration\nmode: full\nsource: {source}\ntarget: {target}\n{extra}"
    ))
    .unwrap();
    let verdicts = ferry_engine::compare::compare(&spec, 1000)
        .await
        .unwrap_or_else(|e| panic!("compare: {e}"));
    assert!(!verdicts.is_empty());
    for v in &verdicts {
        assert!(
            v.equal,
            "{} → {}: source {} rows, target {} rows: {:?}",
            v.source, v.target, v.source_rows, v.target_rows, v.differences
        );
    }
}

async fn exec(engine: &str, url: &str, sql: &str) {
    if engine == "postgres" {
        ferry_testkit::pg_exec(url, sql).await;
    } else {
        ferry_testkit::mysql_exec(url, sql).await;
    }
}

fn case_sql(case: &str) -> String {
    std::fs::read_to_string(cases_dir().join(case).join("source.sql")).unwrap()
}

/// The all-types cases of both engines: one full set each, restored into the same
/// engine and into the other one, equal to the source.
#[tokio::test(flavor = "multi_thread")]
async fn full_sets_of_all_types_restore_into_either_engine_equal() {
    let repo = tempfile::tempdir().unwrap();
    // MariaDB source → MariaDB and PostgreSQL
    let my = fresh("mysql", "rs_all_my").await;
    exec("mysql", &my.url, &case_sql("mysql-to-mysql/all_types")).await;
    let m = backup(repo.path(), None, "allmy", &my.url, SetKind::Full).await;
    for engine in ["mysql", "postgres"] {
        let dst = fresh(engine, &format!("rs_all_my_{engine}")).await;
        restore_ok(
            repo.path(),
            None,
            &m.id,
            &dst.url,
            &["--name", &uname(&format!("r-my-{engine}"))],
        );
        assert_equal(&my.url, &dst.url).await;
    }
    // the restore's own comparison catches what differs from the set's digests: a
    // digest altered in the (unencrypted) manifest makes the restore fail
    let manifest = find_set_dir(repo.path(), &m.id).join("manifest.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let first = &mut doc["tables"][0];
    let table = first["table"]["id"]["name"].as_str().unwrap().to_string();
    let d = first["digest"]
        .as_str()
        .expect("a full set has digests")
        .to_string();
    let flipped = if d.ends_with('0') { "1" } else { "0" };
    first["digest"] = serde_json::Value::String(format!("{}{flipped}", &d[..d.len() - 1]));
    std::fs::write(&manifest, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let dst = fresh("mysql", "rs_all_my_digest").await;
    let storage = repo_url(repo.path());
    let out = restore(
        None,
        &[
            "--from",
            &m.id,
            "--target",
            &dst.url,
            "--storage",
            &storage,
            "--name",
            &uname("digest"),
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("compare: 1 difference")
            && t.contains(&table)
            && t.contains("differ from the set's digest"),
        "{t}"
    );

    // PostgreSQL sources: into PostgreSQL (every type), and into MariaDB (the
    // case written for that direction)
    for (case, engine) in [
        ("postgres-to-postgres/all_types", "postgres"),
        ("postgres-to-mysql/all_types", "mysql"),
    ] {
        let pg = fresh("postgres", "rs_all_pg").await;
        exec("postgres", &pg.url, &case_sql(case)).await;
        let m = backup(
            repo.path(),
            None,
            &format!("allpg{engine}"),
            &pg.url,
            SetKind::Full,
        )
        .await;
        let dst = fresh(engine, &format!("rs_all_pg_{engine}")).await;
        let out = restore_ok(
            repo.path(),
            None,
            &m.id,
            &dst.url,
            &["--name", &uname(&format!("r-pg-{engine}"))],
        );
        assert!(out.contains("precheck: passed"), "{out}");
        assert_equal(&pg.url, &dst.url).await;
    }
}

/// Takes a backup of `source` without its keyless tables (incrementals refuse them).
async fn backup_keyed(dir: &Path, cluster: &str, source: &str, kind: SetKind) -> Manifest {
    let repo = Repo::create_or_open(&repo_url(dir), None).await.unwrap();
    let req = BackupRequest {
        cluster: cluster.into(),
        source: Endpoint::parse(source, "FERRY_TEST_UNSET_PASSWORD").unwrap(),
        objects: ObjectFilter::new(&[], &["*.nokey".to_string()]).unwrap(),
        kind,
        jobs: 2,
        chunk_rows: 1,
        quiet: true,
    };
    run_backup(&repo, &req)
        .await
        .unwrap_or_else(|e| panic!("backup of {source}: {e}"))
        .manifest
}

/// The all-types cases as a chain: the part above the case's stream marker in a
/// full set, the rest (inserts, updates, a key change leaving a TOASTed value
/// unchanged, deletes) in an incremental one; the chain restored into the same and
/// the other engine, equal to the source.
#[tokio::test(flavor = "multi_thread")]
async fn chains_of_all_types_restore_into_either_engine_equal() {
    let repo = tempfile::tempdir().unwrap();
    for (engine, case, targets) in [
        (
            "mysql",
            "mysql-to-mysql/all_types",
            &["mysql", "postgres"][..],
        ),
        (
            "postgres",
            "postgres-to-postgres/all_types",
            &["postgres"][..],
        ),
        ("postgres", "postgres-to-mysql/all_types", &["mysql"][..]),
    ] {
        let sql = case_sql(case);
        let (before, after) = sql.split_once("-- ferry:stream").unwrap();
        let src = fresh(engine, "rs_types_chain").await;
        exec(engine, &src.url, before).await;
        let cluster = uname("types");
        let full = backup_keyed(repo.path(), &cluster, &src.url, SetKind::Full).await;
        exec(
            engine,
            &src.url,
            after.trim_start_matches("\n-- ferry:stream"),
        )
        .await;
        let inc = backup_keyed(repo.path(), &cluster, &src.url, SetKind::Incremental).await;
        assert_eq!(inc.parent.as_deref(), Some(full.id.as_str()));
        assert!(
            inc.files.iter().any(|f| f.rows > 0),
            "{case}: an empty incremental"
        );
        for target in targets {
            let dst = fresh(target, &format!("rs_types_chain_{target}")).await;
            restore_ok(
                repo.path(),
                None,
                &inc.id,
                &dst.url,
                &["--name", &uname("types")],
            );
            assert_equal_objects(
                &src.url,
                &dst.url,
                "objects:\n  exclude:\n    - \"*.nokey\"\n",
            )
            .await;
        }
        if engine == "postgres" {
            let ep = Endpoint::parse(&src.url, "FERRY_TEST_UNSET_PASSWORD").unwrap();
            ferry_backup::backup::drop_anchor(&cluster, &ep)
                .await
                .unwrap();
        }
    }
}

/// Three sets with writes between them, restored to the last: equal to the source.
#[tokio::test(flavor = "multi_thread")]
async fn an_incremental_chain_restores_to_its_last_set() {
    let repo = tempfile::tempdir().unwrap();
    let src = fresh("mysql", "rs_chain").await;
    exec(
        "mysql",
        &src.url,
        "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, owner varchar(40), note text);
         INSERT INTO accounts SELECT seq, 100, CONCAT('owner ', seq), NULL FROM seq_1_to_500;
         CREATE TABLE log (id bigint AUTO_INCREMENT PRIMARY KEY, what varchar(20));
         INSERT INTO log (what) SELECT 'start' FROM seq_1_to_10;",
    )
    .await;
    let full = backup(repo.path(), None, "chain", &src.url, SetKind::Full).await;
    exec(
        "mysql",
        &src.url,
        "UPDATE accounts SET balance = balance + 5 WHERE id % 7 = 0;
         DELETE FROM accounts WHERE id BETWEEN 10 AND 20;
         INSERT INTO accounts SELECT seq, 1, 'new', 'n' FROM seq_1000_to_1100;
         INSERT INTO log (what) VALUES ('one');",
    )
    .await;
    let i1 = backup(repo.path(), None, "chain", &src.url, SetKind::Incremental).await;
    assert_eq!(i1.parent.as_deref(), Some(full.id.as_str()));
    exec(
        "mysql",
        &src.url,
        "UPDATE accounts SET owner = 'changed', note = NULL WHERE id = 1000;
         DELETE FROM accounts WHERE id = 1050;
         INSERT INTO accounts VALUES (15, 15, 'back again', 'x');
         UPDATE accounts SET id = 5000 WHERE id = 30;
         DELETE FROM log WHERE id = 1;",
    )
    .await;
    let i2 = backup(repo.path(), None, "chain", &src.url, SetKind::Incremental).await;
    assert_eq!(i2.parent.as_deref(), Some(i1.id.as_str()));
    for engine in ["mysql", "postgres"] {
        let dst = fresh(engine, &format!("rs_chain_{engine}")).await;
        let out = restore_ok(
            repo.path(),
            None,
            &i2.id,
            &dst.url,
            &["--name", &uname(&format!("chain-{engine}"))],
        );
        assert!(out.contains(&full.id) && out.contains(&i1.id), "{out}");
        assert_equal(&src.url, &dst.url).await;
    }
    // a chain whose middle set is gone is refused, naming it
    let set_dir = find_set_dir(repo.path(), &i1.id);
    std::fs::remove_file(set_dir.join("manifest.json")).unwrap();
    let dst = fresh("mysql", "rs_chain_gap").await;
    let storage = repo_url(repo.path());
    let out = restore(
        None,
        &[
            "--from",
            &i2.id,
            "--target",
            &dst.url,
            "--storage",
            &storage,
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("precheck_failed") && text(&out).contains(&i1.id),
        "{}",
        text(&out)
    );
}

/// The directory of set `id` in the repository at `root`.
fn find_set_dir(root: &Path, id: &str) -> PathBuf {
    for c in std::fs::read_dir(root.join("clusters")).unwrap() {
        let d = c.unwrap().path().join("sets").join(id);
        if d.is_dir() {
            return d;
        }
    }
    panic!("no directory of set {id} under {}", root.display());
}

/// The data files of a set, relative to its directory, sorted.
fn data_files(set_dir: &Path) -> Vec<String> {
    fn walk(d: &Path, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else if p.extension().is_some_and(|x| x == "fzr") {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&set_dir.join("data"), set_dir, &mut out);
    out.sort();
    out
}

fn pseudo_random(n: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    nanos % n.max(1)
}

/// Kill -9 in the middle of a restore, then the same command again: the files
/// committed before are skipped (and said so), the rest restored once, equal.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_restore_then_rerun_resumes() {
    let repo = tempfile::tempdir().unwrap();
    let src = fresh("mysql", "rs_kill_src").await;
    exec(
        "mysql",
        &src.url,
        "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, owner varchar(40));
         INSERT INTO accounts SELECT seq, 100, CONCAT('owner ', seq) FROM seq_1_to_200000;",
    )
    .await;
    let repo_handle = Repo::create_or_open(&repo_url(repo.path()), Some("k1"))
        .await
        .unwrap();
    let m = run_backup(
        &repo_handle,
        &BackupRequest {
            cluster: "kill".into(),
            source: Endpoint::parse(&src.url, "FERRY_TEST_UNSET_PASSWORD").unwrap(),
            objects: ObjectFilter::default(),
            kind: SetKind::Full,
            jobs: 2,
            chunk_rows: 2000,
            quiet: true,
        },
    )
    .await
    .unwrap()
    .manifest;
    assert!(m.files.len() >= 20, "{} files", m.files.len());
    let dst = fresh("postgres", "rs_kill_dst").await;
    let storage = repo_url(repo.path());
    let name = &uname("kill-resume");
    let args = [
        "--from",
        &m.id,
        "--target",
        &dst.url,
        "--storage",
        &storage,
        "--jobs",
        "1",
        "--name",
        name,
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["restore", "create", "-q"])
        .args(args)
        .env("FERRY_LOG", "warn")
        .env("FERRY_REPO_KEY", "k1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let done_before = loop {
        let q = format!("SELECT count(*) FROM ferry.chunks WHERE task = '{name}' AND done = 1");
        let n: i64 = match tokio_postgres::connect(&dst.url, tokio_postgres::NoTls).await {
            Ok((c, conn)) => {
                tokio::spawn(conn);
                c.query_one(q.as_str(), &[])
                    .await
                    .map(|r| r.get(0))
                    .unwrap_or(0)
            }
            Err(_) => 0,
        };
        if n >= 3 {
            break n;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the restore finished before it could be killed"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no file was restored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!((done_before as usize) < m.files.len());
    let out = restore(Some("k1"), &args);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("resumed an interrupted restore"), "{t}");
    let skipped: usize = t
        .split("resumed an interrupted restore: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no skipped count in {t}"));
    assert!(
        skipped as i64 >= done_before,
        "{skipped} skipped, {done_before} were done: {t}"
    );
    assert!(t.contains("compare: equal"), "{t}");
    assert_equal(&src.url, &dst.url).await;
    // running it once more: already finished
    let again = restore(Some("k1"), &args);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains("already finished"),
        "{}",
        text(&again)
    );
}

/// A flipped byte in a random data file, a deleted file, a wrong key: the precheck
/// fails naming the file (or the key), exit code 2, nothing written.
#[tokio::test(flavor = "multi_thread")]
async fn damaged_sets_and_wrong_keys_fail_the_precheck() {
    let repo = tempfile::tempdir().unwrap();
    let key = "correct horse battery";
    let src = fresh("mysql", "rs_bad_src").await;
    exec(
        "mysql",
        &src.url,
        "CREATE TABLE a (id int PRIMARY KEY, v varchar(20)); INSERT INTO a SELECT seq, 'x' FROM seq_1_to_50;
         CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b SELECT seq FROM seq_1_to_30;",
    )
    .await;
    let m = backup(repo.path(), Some(key), "bad", &src.url, SetKind::Full).await;
    let set_dir = find_set_dir(repo.path(), &m.id);
    let files = data_files(&set_dir);
    assert!(files.len() > 4, "{files:?}");
    let dst = fresh("mysql", "rs_bad_dst").await;
    let storage = repo_url(repo.path());
    let args = [
        "--from",
        m.id.as_str(),
        "--target",
        dst.url.as_str(),
        "--storage",
        storage.as_str(),
    ];

    // a flipped byte
    let victim = &files[pseudo_random(files.len())];
    let path = set_dir.join(victim);
    let original = std::fs::read(&path).unwrap();
    let mut bad = original.clone();
    let at = pseudo_random(bad.len());
    bad[at] ^= 0x01;
    std::fs::write(&path, &bad).unwrap();
    let out = restore(Some(key), &args);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("precheck_failed")
            && t.contains(victim.as_str())
            && t.contains("checksum mismatch"),
        "{victim}: {t}"
    );
    assert!(t.contains("hint:"), "{t}");
    std::fs::write(&path, &original).unwrap();

    // a deleted file
    let victim = &files[pseudo_random(files.len())];
    let path = set_dir.join(victim);
    let original = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let out = restore(Some(key), &args);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("precheck_failed") && t.contains(&format!("{victim} is missing")),
        "{t}"
    );
    std::fs::write(&path, &original).unwrap();

    // a wrong key, and none
    for k in [Some("sekrit-wrong-7731"), None] {
        let out = restore(k, &args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(t.to_lowercase().contains("key"), "{t}");
        assert!(
            !t.contains("sekrit-wrong-7731") && !t.contains(key),
            "a key in the output: {t}"
        );
    }
    // nothing was written
    assert!(common::query_lines("mysql", &dst.url, "SHOW TABLES")
        .await
        .is_empty());

    // intact again: restores, equal
    restore_ok(repo.path(), Some(key), &m.id, &dst.url, &[]);
    assert_equal(&src.url, &dst.url).await;
    // the target is no longer empty: refused with the fix
    let out = restore(
        Some(key),
        &[
            "--from",
            &m.id,
            "--target",
            &dst.url,
            "--storage",
            &storage,
            "--name",
            &uname("other"),
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("target not empty") && t.contains("--existing-data drop"),
        "{t}"
    );
}

fn url_parts(url: &str) -> (String, String, String, String) {
    let u = url::Url::parse(url).unwrap();
    (
        u.host_str().unwrap().to_string(),
        u.port().unwrap().to_string(),
        u.username().to_string(),
        u.path().trim_start_matches('/').to_string(),
    )
}

fn run_tool(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", text(&out));
}

/// A `mariadb-dump` of the shop example and a `pg_dump -Fc` of the PostgreSQL
/// all-types case, imported by `ferry restore create --from-dump` into fresh
/// databases: equal to where they were dumped from.
#[tokio::test(flavor = "multi_thread")]
async fn dumps_import_with_the_native_clients_equal() {
    let dir = tempfile::tempdir().unwrap();
    // MariaDB
    let src = fresh("mysql", "rs_dump_my").await;
    let shop = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/shop/mariadb.sql"),
    )
    .unwrap();
    exec("mysql", &src.url, &shop).await;
    let (host, port, user, db) = url_parts(&src.url);
    let file = dir.path().join("shop.sql");
    run_tool(
        "mariadb-dump",
        &[
            "--host",
            &host,
            "--port",
            &port,
            "--user",
            &user,
            "--single-transaction",
            "--result-file",
            file.to_str().unwrap(),
            &db,
        ],
    );
    let dst = fresh("mysql", "rs_dump_my_dst").await;
    let url = format!("file://{}", file.display());
    let out = restore(None, &["--from-dump", &url, "--target", &dst.url]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("customers:"), "rows per table: {t}");
    // mariadb-dump writes FLOAT values with 6 significant digits (the dump itself
    // holds less than the column): products.weight_kg is checked apart, to that
    // precision, every other value of every table exactly
    assert_equal_objects(
        &src.url,
        &dst.url,
        &format!("objects:\n  exclude:\n    - \"{}.products\"\n", src.name),
    )
    .await;
    let (a, b) = (&src.name, &dst.name);
    let off = common::query_lines(
        "mysql",
        &dst.url,
        &format!(
            "SELECT count(*) FROM `{a}`.products x LEFT JOIN `{b}`.products y USING (id) \
             WHERE y.id IS NULL OR NOT (x.sku <=> y.sku AND x.title <=> y.title AND x.price <=> y.price \
             AND x.attributes <=> y.attributes) OR abs(x.weight_kg - y.weight_kg) > 1e-5 * abs(x.weight_kg) \
             OR (x.weight_kg IS NULL) <> (y.weight_kg IS NULL)"
        ),
    )
    .await;
    assert_eq!(
        off,
        vec!["0".to_string()],
        "products differ beyond the dump's float precision"
    );
    // a MariaDB dump into PostgreSQL: refused, with the way to do it
    let pg = fresh("postgres", "rs_dump_cross").await;
    let out = restore(None, &["--from-dump", &url, "--target", &pg.url]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("cross-engine dump import is not supported") && t.contains("ferry run"),
        "{t}"
    );

    // PostgreSQL, custom format
    let src = fresh("postgres", "rs_dump_pg").await;
    exec(
        "postgres",
        &src.url,
        &case_sql("postgres-to-postgres/all_types"),
    )
    .await;
    let (host, port, user, db) = url_parts(&src.url);
    let file = dir.path().join("all.dump");
    run_tool(
        "pg_dump",
        &[
            "-Fc",
            "-h",
            &host,
            "-p",
            &port,
            "-U",
            &user,
            "-d",
            &db,
            "-f",
            file.to_str().unwrap(),
        ],
    );
    let dst = fresh("postgres", "rs_dump_pg_dst").await;
    let out = restore(
        None,
        &["--from-dump", file.to_str().unwrap(), "--target", &dst.url],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_equal(&src.url, &dst.url).await;
}
