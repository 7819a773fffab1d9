//! Backup sets written by `ferry backup now --storage …` (direct mode), read back
//! here through the repository: full sets of the all-types cases, an incremental
//! chain holding exactly the net changes, a kill -9 mid-backup resumed without
//! storing a finished file twice, and `verify` naming damaged files.
//!
//! A set's rows are checked by "materialising" it: the data files' rows, then each
//! changes file applied in order (a Put upserts the final image, keeping the
//! previous value of an `Unchanged` cell; a Delete removes the key) — what a restore
//! does — compared with the source through canonical values.

mod common;

use common::{ferry, fresh, text};
use ferry_backup::codec::{self, Change};
use ferry_backup::manifest::{FileKind, Manifest};
use ferry_backup::repo::Repo;
use ferry_core::canonical::canonical;
use ferry_core::change::Cell;
use ferry_core::{LogicalType, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

async fn exec(engine: &str, url: &str, sql: &str) {
    if engine == "postgres" {
        ferry_testkit::pg_exec(url, sql).await;
    } else {
        ferry_testkit::mysql_exec(url, sql).await;
    }
}

fn cluster(hint: &str) -> String {
    // MariaDB binlog readers are told apart by name: unique per test
    ferry_testkit::unique_name(hint)
        .replace('_', "-")
        .to_lowercase()
}

/// `ferry backup now` in direct mode; the set's manifest (JSON output).
fn backup_now(cluster: &str, source: &str, storage: &str, extra: &[&str]) -> Manifest {
    let mut args = vec![
        "backup",
        "now",
        cluster,
        "--source",
        source,
        "--storage",
        storage,
        "-q",
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = ferry(&args);
    assert!(out.status.success(), "backup now failed:\n{}", text(&out));
    Manifest::from_json(&out.stdout, "output").unwrap()
}

/// A set's rows after its chain: key (canonical) → the row's canonical cells.
type Rows = BTreeMap<Vec<u8>, Vec<Vec<u8>>>;

fn canon(v: &Value, t: &LogicalType) -> Vec<u8> {
    let mut b = Vec::new();
    canonical(v, t, &mut b);
    b
}

/// Table `name`'s rows at the end of `chain` (full set first), as a restore would
/// leave them.
async fn materialise(repo: &Repo, chain: &[Manifest], name: &str) -> Rows {
    let mut rows = Rows::new();
    for m in chain {
        let ti = m
            .tables
            .iter()
            .position(|t| t.table.id.name == name)
            .unwrap_or_else(|| panic!("{name} not in set {}", m.id));
        let t = &m.tables[ti].table;
        let cols: Vec<_> = t.copied_columns().cloned().collect();
        let key: Vec<usize> = t
            .primary_key
            .iter()
            .map(|k| cols.iter().position(|c| &c.name == k).unwrap())
            .collect();
        let key_types: Vec<LogicalType> = key.iter().map(|&i| cols[i].logical.clone()).collect();
        let key_of = |vals: &[&Value]| -> Vec<u8> {
            let mut b = Vec::new();
            for (v, ty) in vals.iter().zip(&key_types) {
                canonical(v, ty, &mut b);
                b.push(0x1f);
            }
            b
        };
        for f in m.files.iter().filter(|f| f.table == ti) {
            let stored = repo.read_file(m, f).await.unwrap();
            match f.kind {
                FileKind::Data => {
                    for (n, r) in codec::read_rows(&stored, None, &f.path)
                        .unwrap()
                        .into_iter()
                        .enumerate()
                    {
                        let k = if key.is_empty() {
                            format!("{}/{n}", f.path).into_bytes()
                        } else {
                            key_of(&key.iter().map(|&i| &r[i]).collect::<Vec<_>>())
                        };
                        let cells = r.iter().zip(&cols).map(|(v, c)| canon(v, &c.logical));
                        rows.insert(k, cells.collect());
                    }
                }
                FileKind::Changes => {
                    for c in codec::read_changes(&stored, None, &f.path).unwrap() {
                        match c {
                            Change::Put(cells) => {
                                let k = key_of(
                                    &key.iter()
                                        .map(|&i| match &cells[i] {
                                            Cell::Value(v) => v,
                                            Cell::Unchanged => panic!("unchanged key cell"),
                                        })
                                        .collect::<Vec<_>>(),
                                );
                                let prev = rows.get(&k).cloned();
                                let new: Vec<Vec<u8>> = cells
                                    .iter()
                                    .zip(&cols)
                                    .enumerate()
                                    .map(|(i, (c, col))| match c {
                                        Cell::Value(v) => canon(v, &col.logical),
                                        Cell::Unchanged => prev
                                            .as_ref()
                                            .expect("an unchanged cell of a new row")[i]
                                            .clone(),
                                    })
                                    .collect();
                                rows.insert(k, new);
                            }
                            Change::Delete(k) => {
                                rows.remove(&key_of(&k.iter().collect::<Vec<_>>()));
                            }
                        }
                    }
                }
            }
        }
    }
    rows
}

/// The source's rows of `name` now, as a fresh full set of another cluster reads
/// them (the chunk reader's values: what a restore of a full set gives).
async fn source_rows(engine: &str, url: &str, name: &str) -> Rows {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let m = backup_now(&cluster("ref"), url, &storage, &[]);
    let repo = Repo::open(&storage, None).await.unwrap();
    let rows = materialise(&repo, std::slice::from_ref(&m), name).await;
    if engine == "postgres" {
        ferry_backup::backup::drop_anchor(
            &m.cluster,
            &ferry_core::Endpoint::parse(url, "X").unwrap(),
        )
        .await
        .unwrap();
    }
    rows
}

async fn count(engine: &str, url: &str, table: &str) -> u64 {
    common::query_lines(engine, url, &format!("SELECT count(*) FROM {table}"))
        .await
        .first()
        .unwrap()
        .parse()
        .unwrap()
}

fn case_sql(engine: &str) -> (String, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../../tests/cases/{engine}-to-{engine}/all_types/source.sql"
    ));
    let sql = std::fs::read_to_string(dir).unwrap();
    let (a, b) = sql.split_once("-- ferry:stream").unwrap();
    (a.to_string(), b.to_string())
}

/// The all-types case: a full set of everything (manifest, counts, digests,
/// verify), then — without the keyless table — a full set before the case's
/// streamed part and an incremental after it, whose chain equals a fresh read.
async fn all_types(engine: &str) {
    let src = fresh(engine, "bk_types").await;
    let (before, after) = case_sql(engine);
    exec(engine, &src.url, &before).await;
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("file://{}", dir.path().display());
    let c = cluster("types");

    // without the keyless table: full, the streamed part, incremental
    let full = backup_now(
        &c,
        &src.url,
        &storage,
        &["--exclude", "*.nokey", "--chunk-rows", "1"],
    );
    exec(engine, &src.url, &after).await;
    let inc = backup_now(
        &c,
        &src.url,
        &storage,
        &["--exclude", "*.nokey", "--incremental"],
    );
    assert_eq!(inc.parent.as_deref(), Some(full.id.as_str()));
    assert_eq!(inc.chain, full.id);
    assert_eq!(inc.start_position, full.position);
    assert!(inc.files.iter().all(|f| f.kind == FileKind::Changes));
    assert!(!inc.files.is_empty(), "the streamed part changed rows");
    let repo = Repo::open(&storage, None).await.unwrap();
    for t in &full.tables {
        let name = &t.table.id.name;
        let chain = materialise(&repo, &[full.clone(), inc.clone()], name).await;
        let now = source_rows(engine, &src.url, name).await;
        assert_eq!(chain.len(), now.len(), "{name}: rows after the chain");
        assert!(
            chain == now,
            "{name}: the chain's rows differ from the source's"
        );
    }

    // everything, the keyless table too
    let all = backup_now(
        &cluster("types-all"),
        &src.url,
        &storage,
        &["--chunk-rows", "2"],
    );
    assert_eq!(
        all.engine,
        if engine == "postgres" {
            "postgres"
        } else {
            "mysql"
        }
    );
    assert!(all.position.is_some() && all.consistent_at.is_some());
    assert!(!all.server_version.is_empty());
    assert!(!all.source.contains("secret"));
    assert!(all.tables.iter().any(|t| t.table.id.name == "nokey"));
    for t in &all.tables {
        let q = if engine == "postgres" {
            format!("\"{}\".\"{}\"", t.table.id.schema, t.table.id.name)
        } else {
            format!("`{}`.`{}`", t.table.id.schema, t.table.id.name)
        };
        assert_eq!(t.rows, count(engine, &src.url, &q).await, "{}", t.table.id);
        assert!(
            t.digest.as_deref().is_some_and(|d| d.len() == 32),
            "{}",
            t.table.id
        );
        let files: u64 = all
            .files
            .iter()
            .filter(|f| f.table == all.tables.iter().position(|x| x == t).unwrap())
            .map(|f| f.rows)
            .sum();
        assert_eq!(files, t.rows);
        if engine == "mysql" {
            assert!(t
                .create_text
                .as_deref()
                .is_some_and(|s| s.contains("CREATE TABLE")));
        }
    }
    assert!(all
        .files
        .iter()
        .all(|f| f.sha256.len() == 64 && f.bytes > 0));
    let out = ferry(&["backup", "verify", &all.id, "--storage", &storage]);
    assert!(out.status.success(), "{}", text(&out));
    let out = ferry(&["backup", "show", &all.id, "--storage", &storage, "--files"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&all.files[0].path));
    let out = ferry(&["backup", "list", "--storage", &storage, "--since", "1d"]);
    assert!(
        text(&out).contains(&all.id) && text(&out).contains(&inc.id),
        "{}",
        text(&out)
    );
    let out = ferry(&[
        "backup",
        "list",
        "--storage",
        &storage,
        "--to",
        "2000-01-01T00:00:00Z",
    ]);
    assert!(!text(&out).contains(&all.id), "{}", text(&out));
    drop_anchors(engine, &src.url, &[&c, &all.cluster]).await;
}

async fn drop_anchors(engine: &str, url: &str, clusters: &[&str]) {
    if engine == "postgres" {
        let ep = ferry_core::Endpoint::parse(url, "X").unwrap();
        for c in clusters {
            ferry_backup::backup::drop_anchor(c, &ep).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn all_types_of_postgres_full_and_incremental() {
    all_types("postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn all_types_of_mysql_full_and_incremental() {
    all_types("mysql").await;
}

/// Id → net change of a changes set (one table).
async fn net_changes(repo: &Repo, m: &Manifest) -> BTreeMap<i64, Option<String>> {
    let mut out = BTreeMap::new();
    let int = |v: &Value| match v {
        Value::Int(i) => *i,
        Value::UInt(u) => *u as i64,
        other => panic!("not an integer: {other:?}"),
    };
    for f in &m.files {
        assert_eq!(f.kind, FileKind::Changes);
        let stored = repo.read_file(m, f).await.unwrap();
        for c in codec::read_changes(&stored, None, &f.path).unwrap() {
            match c {
                Change::Put(cells) => {
                    let Cell::Value(id) = &cells[0] else { panic!() };
                    let v = match &cells[1] {
                        Cell::Value(Value::Text(s)) => s.clone(),
                        other => panic!("{other:?}"),
                    };
                    assert!(out.insert(int(id), Some(v)).is_none(), "one change per key");
                }
                Change::Delete(k) => {
                    assert!(out.insert(int(&k[0]), None).is_none(), "one change per key");
                }
            }
        }
    }
    out
}

/// Full, then three incrementals with inserts, updates (one twice, one of the
/// key), deletes (one of a row inserted in between) and nothing: each holds
/// exactly the net changes since its parent.
async fn incremental_chain(engine: &str) {
    let src = fresh(engine, "bk_chain").await;
    let ty = if engine == "postgres" {
        "text"
    } else {
        "varchar(40)"
    };
    exec(
        engine,
        &src.url,
        &format!("CREATE TABLE items (id int PRIMARY KEY, v {ty}, n int)"),
    )
    .await;
    let values: Vec<String> = (1..=50).map(|i| format!("({i}, 'v{i}', {i})")).collect();
    exec(
        engine,
        &src.url,
        &format!("INSERT INTO items VALUES {}", values.join(",")),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let c = cluster("chain");
    let full = backup_now(&c, &src.url, &storage, &["--chunk-rows", "10"]);
    assert_eq!(full.rows(), 50);

    exec(
        engine,
        &src.url,
        "INSERT INTO items VALUES (101, 'new', 0), (102, 'new', 0);
         UPDATE items SET v = 'once' WHERE id = 5;
         UPDATE items SET v = 'first' WHERE id = 6;
         UPDATE items SET v = 'twice', n = 60 WHERE id = 6;
         DELETE FROM items WHERE id = 7;
         INSERT INTO items VALUES (103, 'gone', 0);
         DELETE FROM items WHERE id = 103;
         UPDATE items SET id = 108, v = 'moved' WHERE id = 8;",
    )
    .await;
    let i1 = backup_now(&c, &src.url, &storage, &["--incremental"]);
    let repo = Repo::open(&storage, None).await.unwrap();
    let want: BTreeMap<i64, Option<String>> = [
        (5, Some("once")),
        (6, Some("twice")),
        (7, None),
        (8, None),
        (101, Some("new")),
        (102, Some("new")),
        (103, None),
        (108, Some("moved")),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.map(str::to_string)))
    .collect();
    assert_eq!(net_changes(&repo, &i1).await, want);
    assert_eq!(i1.parent.as_deref(), Some(full.id.as_str()));
    assert_eq!(i1.tables[0].rows, 8);

    exec(
        engine,
        &src.url,
        "UPDATE items SET v = 'again' WHERE id = 101; DELETE FROM items WHERE id = 5",
    )
    .await;
    let i2 = backup_now(&c, &src.url, &storage, &["--incremental"]);
    let want: BTreeMap<i64, Option<String>> = [(5, None), (101, Some("again".to_string()))]
        .into_iter()
        .collect();
    assert_eq!(net_changes(&repo, &i2).await, want);
    assert_eq!(i2.parent.as_deref(), Some(i1.id.as_str()));
    assert_eq!(i2.start_position, i1.position);
    assert_eq!(i2.chain, full.id);

    let i3 = backup_now(&c, &src.url, &storage, &["--incremental"]);
    assert!(net_changes(&repo, &i3).await.is_empty());
    assert_eq!(i3.parent.as_deref(), Some(i2.id.as_str()));

    let chain = materialise(&repo, &[full, i1, i2, i3.clone()], "items").await;
    assert_eq!(chain, source_rows(engine, &src.url, "items").await);
    let out = ferry(&["backup", "verify", &i3.id, "--storage", &storage]);
    assert!(out.status.success(), "{}", text(&out));
    drop_anchors(engine, &src.url, &[&c]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_chain_of_postgres_holds_the_net_changes() {
    incremental_chain("postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_chain_of_mysql_holds_the_net_changes() {
    incremental_chain("mysql").await;
}

/// Files of a set directory: relative path → modification time.
fn set_files(dir: &Path) -> BTreeMap<String, std::time::SystemTime> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "fzr") {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(),
                    e.metadata().unwrap().modified().unwrap(),
                );
            }
        }
    }
    out
}

/// kill -9 mid-backup, writes, then the same command again: the chunks stored by
/// the first run are not stored again, the rest is read at a new snapshot plus
/// the changes between, and the set equals the source.
async fn kill_and_resume(engine: &str) {
    let src = fresh(engine, "bk_kill").await;
    let rows = 150_000;
    let fill = if engine == "postgres" {
        format!("CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, owner text);
                 INSERT INTO accounts SELECT g, 100, 'owner ' || g FROM generate_series(1, {rows}) g;")
    } else {
        format!("CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, owner varchar(40));
                 INSERT INTO accounts SELECT seq, 100, CONCAT('owner ', seq) FROM seq_1_to_{rows};")
    };
    exec(engine, &src.url, &fill).await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let c = cluster("kill");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "backup",
            "now",
            &c,
            "--source",
            &src.url,
            "--storage",
            &storage,
            "-q",
            "--jobs",
            "1",
            "--chunk-rows",
            "1000",
        ])
        .env("FERRY_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sets = dir.path().join("clusters").join(&c).join("sets");
    let t0 = Instant::now();
    let set_dir = loop {
        let done = std::fs::read_dir(&sets)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| {
                let p = e.ok()?.path();
                let rec: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(p.join("progress.json")).ok()?).ok()?;
                let n = rec["plan"]
                    .as_array()?
                    .iter()
                    .filter(|c| c["done"] == true)
                    .count();
                (n >= 10).then_some(p)
            });
        if let Some(p) = done {
            break p;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup finished before it could be killed; make the table bigger"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no chunk was stored"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !set_dir.join("manifest.json").exists(),
        "killed before the end"
    );
    let before = set_files(&set_dir);
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(set_dir.join("progress.json")).unwrap()).unwrap();
    let recorded: Vec<String> = rec["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert!(recorded.len() >= 10);
    // changes while no backup runs: in chunks already stored and in the rest
    exec(engine, &src.url, "UPDATE accounts SET balance = 7 WHERE id IN (3, 140000); DELETE FROM accounts WHERE id IN (4, 140001); INSERT INTO accounts VALUES (200001, 1, 'late')").await;
    std::thread::sleep(Duration::from_millis(1100)); // mtimes of rewritten files would differ

    let out = ferry(&[
        "backup",
        "now",
        "-o",
        "json",
        &c,
        "--source",
        &src.url,
        "--storage",
        &storage,
        "-q",
        "--jobs",
        "2",
        "--chunk-rows",
        "1000",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let m = Manifest::from_json(&out.stdout, "output").unwrap();
    assert_eq!(
        set_dir.file_name().unwrap().to_string_lossy(),
        m.id,
        "the interrupted set was completed"
    );
    let after = set_files(&set_dir);
    for p in &recorded {
        assert_eq!(before.get(p), after.get(p), "{p} was stored again");
        assert!(
            m.files.iter().any(|f| &f.path == p),
            "{p} is not in the manifest"
        );
    }
    assert!(
        m.files.iter().any(|f| f.kind == FileKind::Changes),
        "the changes between the snapshots"
    );
    let out = ferry(&["backup", "verify", &m.id, "--storage", &storage]);
    assert!(out.status.success(), "{}", text(&out));
    let repo = Repo::open(&storage, None).await.unwrap();
    let set = materialise(&repo, std::slice::from_ref(&m), "accounts").await;
    assert_eq!(set.len() as u64, rows - 2 + 1);
    assert_eq!(set, source_rows(engine, &src.url, "accounts").await);
    // the cluster goes on from the resumed set
    exec(
        engine,
        &src.url,
        "UPDATE accounts SET balance = 8 WHERE id = 9",
    )
    .await;
    let inc = backup_now(&c, &src.url, &storage, &["--incremental"]);
    assert_eq!(inc.parent.as_deref(), Some(m.id.as_str()));
    assert_eq!(inc.rows(), 1);
    drop_anchors(engine, &src.url, &[&c]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_postgres_backup_then_resume_stores_nothing_twice() {
    kill_and_resume("postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_mysql_backup_then_resume_stores_nothing_twice() {
    kill_and_resume("mysql").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_a_damaged_and_a_missing_file() {
    let src = fresh("mysql", "bk_verify").await;
    exec("mysql", &src.url, "CREATE TABLE t (id int PRIMARY KEY, s varchar(20)); INSERT INTO t SELECT seq, 'x' FROM seq_1_to_100").await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let m = backup_now(
        &cluster("verify"),
        &src.url,
        &storage,
        &["--chunk-rows", "20"],
    );
    assert!(m.files.len() >= 4);
    let set_dir = dir
        .path()
        .join("clusters")
        .join(&m.cluster)
        .join("sets")
        .join(&m.id);
    let ok = ferry(&["backup", "verify", &m.id, "--storage", &storage]);
    assert!(ok.status.success(), "{}", text(&ok));

    let flipped = &m.files[1].path;
    let mut b = std::fs::read(set_dir.join(flipped)).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x01;
    std::fs::write(set_dir.join(flipped), b).unwrap();
    let out = ferry(&["backup", "verify", &m.id, "--storage", &storage]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(flipped.as_str()), "{}", text(&out));

    let deleted = &m.files[3].path;
    std::fs::remove_file(set_dir.join(deleted)).unwrap();
    let out = ferry(&["backup", "verify", &m.id, "--storage", &storage]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains(flipped.as_str()) && t.contains(deleted.as_str()),
        "{t}"
    );
    for (i, f) in m.files.iter().enumerate() {
        if i != 1 && i != 3 {
            assert!(!t.contains(f.path.as_str()), "{} is intact: {t}", f.path);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let out = ferry(&["backup", "now", "shop", "--storage", &storage]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--source"), "{}", text(&out));
    let out = ferry(&[
        "backup",
        "now",
        "shop",
        "--storage",
        &storage,
        "--source",
        "oracle://u:secret@h/db",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("oracle") && !text(&out).contains("secret"),
        "{}",
        text(&out)
    );
    let out = ferry(&[
        "backup",
        "now",
        "Shop!",
        "--storage",
        &storage,
        "--source",
        "mysql://u:secret@127.0.0.1:1/db",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cluster name") && !text(&out).contains("secret"),
        "{}",
        text(&out)
    );
    let src = fresh("mysql", "bk_input").await;
    exec("mysql", &src.url, "CREATE TABLE t (id int PRIMARY KEY)").await;
    let out = ferry(&[
        "backup",
        "now",
        &cluster("input"),
        "--incremental",
        "--storage",
        &storage,
        "--source",
        &src.url,
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("full backup"), "{}", text(&out));
    // a table without a primary key: full sets only
    exec("mysql", &src.url, "CREATE TABLE loose (a int)").await;
    let c = cluster("keyless");
    backup_now(&c, &src.url, &storage, &[]);
    let out = ferry(&[
        "backup",
        "now",
        &c,
        "--incremental",
        "--storage",
        &storage,
        "--source",
        &src.url,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("loose") && text(&out).contains("no primary key"),
        "{}",
        text(&out)
    );
    let out = ferry(&[
        "backup",
        "show",
        "20990101T000000Z-Fabcd",
        "--storage",
        &storage,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("20990101T000000Z-Fabcd"),
        "{}",
        text(&out)
    );
    let out = ferry(&["backup", "verify", "nope", "--storage", &storage]);
    assert!(
        !out.status.success() && text(&out).contains("nope"),
        "{}",
        text(&out)
    );
}

/// FERRY_REPO_KEY: the set is sealed, verify reads it with the key, and without
/// it (or with a wrong one) the repository says what is wrong.
#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_repository_needs_its_key() {
    let src = fresh("mysql", "bk_key").await;
    exec(
        "mysql",
        &src.url,
        "CREATE TABLE t (id int PRIMARY KEY, s varchar(20)); INSERT INTO t SELECT seq, 'plain words' FROM seq_1_to_200",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let c = cluster("key");
    let run = |args: &[&str], key: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(args)
            .env("FERRY_LOG", "warn")
            .env_remove("FERRY_REPO_KEY");
        if let Some(k) = key {
            cmd.env("FERRY_REPO_KEY", k);
        }
        cmd.output().unwrap()
    };
    let out = run(
        &[
            "backup",
            "now",
            &c,
            "--source",
            &src.url,
            "--storage",
            &storage,
            "-q",
            "-o",
            "json",
        ],
        Some("correct horse"),
    );
    assert!(out.status.success(), "{}", text(&out));
    let m = Manifest::from_json(&out.stdout, "output").unwrap();
    assert!(m.encrypted);
    let set_dir = dir
        .path()
        .join("clusters")
        .join(&c)
        .join("sets")
        .join(&m.id);
    let stored = std::fs::read(set_dir.join(&m.files[0].path)).unwrap();
    assert!(
        codec::read_rows(&stored, None, "f").is_err(),
        "sealed without the key"
    );
    let out = run(
        &["backup", "verify", &m.id, "--storage", &storage],
        Some("correct horse"),
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = run(
        &["backup", "verify", &m.id, "--storage", &storage],
        Some("wrong"),
    );
    assert!(!out.status.success());
    assert!(!text(&out).contains("correct horse"), "{}", text(&out));
    let out = run(&["backup", "list", "--storage", &storage], None);
    assert!(!out.status.success());
    assert!(text(&out).contains("FERRY_REPO_KEY"), "{}", text(&out));
}

/// A PostgreSQL user without the REPLICATION privilege (like a server at
/// `wal_level = replica`) cannot keep a log anchor: the full backup is still taken,
/// as a plain snapshot with no log position, with a warning saying what an
/// incremental would need — and the incremental then says so too.
#[tokio::test(flavor = "multi_thread")]
async fn a_postgresql_full_backup_needs_no_logical_decoding() {
    let src = fresh("postgres", "bk_norepl").await;
    let role = ferry_testkit::unique_name("bk_norepl");
    exec(
        "postgres",
        &src.url,
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY, s text); \
             INSERT INTO t SELECT g, 'x' || g FROM generate_series(1, 50) g; \
             CREATE ROLE {role} LOGIN NOREPLICATION; GRANT SELECT ON t TO {role}"
        ),
    )
    .await;
    let mut url = url::Url::parse(&src.url).unwrap();
    url.set_username(&role).unwrap();
    url.set_password(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let name = cluster("norepl");
    let out = ferry(&[
        "backup",
        "now",
        &name,
        "--source",
        url.as_str(),
        "--storage",
        &storage,
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no log position") && text(&out).contains("REPLICATION"),
        "{}",
        text(&out)
    );
    let m = Manifest::from_json(&out.stdout, "output").unwrap();
    assert_eq!(m.position, None);
    assert_eq!(m.tables[0].rows, 50);
    let inc = ferry(&[
        "backup",
        "now",
        &name,
        "--incremental",
        "--source",
        url.as_str(),
        "--storage",
        &storage,
    ]);
    assert!(!inc.status.success());
    assert!(text(&inc).contains("has no log position"), "{}", text(&inc));
    exec(
        "postgres",
        &src.url,
        &format!("DROP OWNED BY {role}; DROP ROLE {role}"),
    )
    .await;
}
