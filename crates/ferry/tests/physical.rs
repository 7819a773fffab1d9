//! Physical PostgreSQL backup and point-in-time restore, end to end: a base
//! backup (`ferry backup now --method physical`) with the WAL archive running
//! (`ferry backup log run --method physical`, a child process), then the
//! pgBackRest method — a marker row written before each recovery target (a time,
//! an LSN, a mark, the archive's end), a data directory restored to each target
//! (`ferry restore create --data-dir`), a PostgreSQL server started on it, and
//! exactly the markers before the target found there. Also: the archive with a
//! segment deleted refuses the restore naming the segment; a point outside the
//! window is refused; `ferry backup verify` reads a physical set and names a
//! damaged part.

mod common;

use common::{ferry, text};
use ferry_backup::log::index::{mark_path, Mark};
use ferry_backup::manifest::Manifest;
use ferry_backup::physical::{read_head, wal};
use ferry_backup::repo::Repo;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The server's user must own a data directory and read the repository.
fn hand_to_postgres(dir: &Path) {
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .expect("chown");
        assert!(ok.success());
    }
}

async fn lines(url: &str, sql: &str) -> Vec<String> {
    common::query_lines("postgres", url, sql).await
}

async fn one(url: &str, sql: &str) -> String {
    lines(url, sql).await.remove(0)
}

/// Stops the archiver child (SIGTERM: it stores its partial segment and exits).
struct Archiver(Child);

impl Drop for Archiver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// A server started on a restored data directory; stopped (and its directory
/// removed) when dropped.
struct Restored {
    dir: PathBuf,
    url: String,
}

impl Restored {
    fn start(dir: &Path) -> Restored {
        hand_to_postgres(dir);
        let port = free_port();
        // hot_standby off: the server accepts connections only once recovery
        // reached its target and promoted
        ferry_testkit::start_postgres_with(dir, port, "-c hot_standby=off");
        Restored {
            dir: dir.to_path_buf(),
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        }
    }
}

impl Restored {
    /// Waits until recovery finished and the server promoted (it refuses
    /// connections until then); fails when the server died (recovery failed).
    async fn ready(&self) {
        let t0 = Instant::now();
        loop {
            if let Ok((c, conn)) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await {
                tokio::spawn(conn);
                if let Ok(r) = c.query_one("SELECT pg_is_in_recovery()", &[]).await {
                    if !r.get::<_, bool>(0) {
                        return;
                    }
                }
            }
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            assert!(
                !self.dir.join("postmaster.pid").exists()
                    || !log.contains("FATAL:  could not") && !log.contains("recovery ended before"),
                "recovery failed:\n{log}"
            );
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "the restored server did not finish recovery in 2 minutes:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Restored {
    fn drop(&mut self) {
        ferry_testkit::stop_postgres(&self.dir);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn restore(storage: &str, from: &str, until: Option<&str>, dir: &Path) -> std::process::Output {
    let d = dir.to_string_lossy().into_owned();
    let mut args = vec![
        "restore",
        "create",
        "--from",
        from,
        "--data-dir",
        d.as_str(),
        "--storage",
        storage,
    ];
    if let Some(u) = until {
        args.extend_from_slice(&["--until", u]);
    }
    ferry(&args)
}

/// Waits until the archive is complete past `lsn` and its latest backup point is
/// at or after `time_us`.
async fn wait_archived(repo: &Repo, cluster: &str, lsn: u64, time_us: i64) {
    let t0 = Instant::now();
    loop {
        if let Some(h) = read_head(repo, cluster).await.expect("head") {
            let end = ferry_core::position::parse_lsn(&h.end_lsn).unwrap_or(0);
            if end >= lsn && h.latest_point_us.is_some_and(|p| p >= time_us) {
                return;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the WAL archive did not reach {lsn:X} in 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn lsn_of(s: &str) -> u64 {
    ferry_core::position::parse_lsn(s).expect("an lsn")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn physical_pitr_restores_exactly_the_markers_before_each_target() {
    let src = ferry_testkit::private_postgres("physical-pitr");
    let root = src
        .dir
        .as_ref()
        .expect("a private server")
        .parent()
        .unwrap()
        .to_path_buf();
    let work = tempfile::Builder::new()
        .prefix("ferry-physical-")
        .tempdir_in(&root)
        .unwrap()
        .keep(); // removed at the end; kept for a look when the test fails
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(work.as_path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let storage = work.as_path().join("repo").to_string_lossy().into_owned();
    let url = src.url_for("postgres");
    let cluster = "phys-pitr";
    ferry_testkit::pg_exec(&url, "CREATE TABLE markers (id int PRIMARY KEY, note text)").await;
    ferry_testkit::pg_exec(&url, "INSERT INTO markers VALUES (0, 'before the backup')").await;

    // the base backup, then the WAL archive from there on
    let out = ferry(&[
        "backup",
        "now",
        cluster,
        "--method",
        "physical",
        "--source",
        &url,
        "--storage",
        &storage,
        "-q",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "physical backup failed:\n{}",
        text(&out)
    );
    let set = Manifest::from_json(&out.stdout, "output").unwrap();
    assert_eq!(set.method, "physical");
    assert!(!set.files.is_empty() && set.position.is_some());
    let verify = ferry(&["backup", "verify", &set.id, "--storage", &storage]);
    assert!(verify.status.success(), "verify failed:\n{}", text(&verify));

    let archiver = Archiver(
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args([
                "backup",
                "log",
                "run",
                cluster,
                "--method",
                "physical",
                "--source",
                &url,
                "--storage",
                &storage,
                "--piece-seconds",
                "1",
                "-q",
            ])
            .env("FERRY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the archiver"),
    );
    let repo = Repo::open(&storage, None).await.unwrap();

    // marker 1, then the time target; a full segment switch on the way
    ferry_testkit::pg_exec(&url, "INSERT INTO markers VALUES (1, 'before the time')").await;
    ferry_testkit::pg_exec(&url, "SELECT pg_switch_wal()").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let time_text = one(
        &url,
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    )
    .await;
    let time_us = chrono::DateTime::parse_from_rfc3339(&time_text)
        .unwrap()
        .timestamp_micros();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // marker 2, then the LSN target
    ferry_testkit::pg_exec(&url, "INSERT INTO markers VALUES (2, 'before the lsn')").await;
    let lsn = one(&url, "SELECT pg_current_wal_insert_lsn()").await;
    // marker 3, then the mark
    ferry_testkit::pg_exec(&url, "INSERT INTO markers VALUES (3, 'before the mark')").await;
    let mark_lsn = one(&url, "SELECT pg_current_wal_insert_lsn()").await;
    let mark = Mark {
        name: "before-upgrade".into(),
        position: format!("lsn:{mark_lsn}"),
        time_us: chrono::Utc::now().timestamp_micros(),
        at: chrono::Utc::now().to_rfc3339(),
    };
    repo.put_json(&mark_path(cluster, "before-upgrade"), &mark)
        .await
        .unwrap();
    // marker 4: only the restore to the archive's end has it
    ferry_testkit::pg_exec(&url, "INSERT INTO markers VALUES (4, 'before the end')").await;
    let end = one(&url, "SELECT pg_current_wal_insert_lsn()").await;
    let end_time = chrono::Utc::now().timestamp_micros();
    assert!(time_us < end_time);
    wait_archived(&repo, cluster, lsn_of(&end), end_time).await;
    drop(archiver);

    let until_lsn = format!("lsn:{lsn}");
    let cases: [(Option<&str>, &[i32]); 4] = [
        (Some(time_text.as_str()), &[0, 1]),
        (Some(until_lsn.as_str()), &[0, 1, 2]),
        (Some("mark:before-upgrade"), &[0, 1, 2, 3]),
        (None, &[0, 1, 2, 3, 4]),
    ];
    for (i, (until, want)) in cases.iter().enumerate() {
        let dir = work.as_path().join(format!("restored-{i}"));
        let out = restore(&storage, cluster, *until, &dir);
        assert!(
            out.status.success(),
            "restore to {until:?} failed:\n{}",
            text(&out)
        );
        let server = Restored::start(&dir);
        server.ready().await;
        let got: Vec<i32> = lines(&server.url, "SELECT id FROM markers ORDER BY id")
            .await
            .iter()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(&got, want, "restore to {until:?}");
        assert_eq!(one(&server.url, "SELECT pg_is_in_recovery()").await, "f");
    }

    // a point after the archive's end is outside the window
    let dir = work.as_path().join("restored-late");
    let out = restore(&storage, cluster, Some("lsn:FF/0"), &dir);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("outside"), "{}", text(&out));

    // a deleted WAL segment between the set and the target: refused, named
    let head = read_head(&repo, cluster).await.unwrap().unwrap();
    let set_end = lsn_of(set.position.as_deref().unwrap().trim_start_matches("lsn:"));
    let names = wal::entries(&repo, cluster).await.unwrap();
    let victim = names
        .iter()
        .find(|n| {
            ferry_backup::physical::parse_segment_name(n, head.segment_size).is_some_and(
                |(_, start)| start + head.segment_size > set_end && start <= lsn_of(&lsn),
            )
        })
        .expect("a complete segment between the set and the lsn target")
        .clone();
    std::fs::remove_file(Path::new(&storage).join(wal::segment_path(cluster, &victim))).unwrap();
    let out = restore(&storage, cluster, Some(&until_lsn), &dir);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&victim) && text(&out).contains("missing"),
        "{}",
        text(&out)
    );
    assert!(
        !dir.join("PG_VERSION").exists(),
        "nothing is written when the precheck fails"
    );

    // verify names a damaged part of the set
    let part = Path::new(&storage)
        .join(ferry_backup::layout::set_dir(cluster, &set.id))
        .join(&set.files[0].path);
    let mut b = std::fs::read(&part).unwrap();
    let n = b.len() / 2;
    b[n] ^= 0xff;
    std::fs::write(&part, b).unwrap();
    let verify = ferry(&["backup", "verify", &set.id, "--storage", &storage]);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    assert!(
        text(&verify).contains(&set.files[0].path),
        "{}",
        text(&verify)
    );
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test]
async fn physical_backup_of_mariadb_without_mariadb_backup_says_how_to_install_it() {
    if ferry_backup::physical::mariadb::find_tool().is_some() {
        eprintln!("mariadb-backup is installed: the not-installed message is not reachable here");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("repo").to_string_lossy().into_owned();
    let src = ferry_testkit::mariadb().url_for("mysql");
    let out = ferry(&[
        "backup",
        "now",
        "phys-my",
        "--method",
        "physical",
        "--source",
        &src,
        "--storage",
        &storage,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("mariadb-backup") && t.contains("apt-get install mariadb-backup"),
        "{t}"
    );
}

fn spawn_archiver(cluster: &str, url: &str, storage: &str) -> Archiver {
    Archiver(
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args([
                "backup",
                "log",
                "run",
                cluster,
                "--method",
                "physical",
                "--source",
                url,
                "--storage",
                storage,
                "--piece-seconds",
                "1",
                "-q",
            ])
            .env("FERRY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the archiver"),
    )
}

/// The archive running before the base backup, killed with -9 while the source
/// keeps writing (and switching segments), restarted: the slot kept the WAL, the
/// archive continues without a gap, and an encrypted repository's WAL reaches the
/// restored server through FERRY_REPO_KEY in its environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn physical_archive_continues_after_kill_9_into_an_encrypted_repository() {
    std::env::set_var("FERRY_REPO_KEY", "physical-test-key");
    let src = ferry_testkit::private_postgres("physical-kill");
    let root = src
        .dir
        .as_ref()
        .expect("a private server")
        .parent()
        .unwrap()
        .to_path_buf();
    let work = tempfile::Builder::new()
        .prefix("ferry-physical-kill-")
        .tempdir_in(&root)
        .unwrap()
        .keep();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let storage = work.join("repo").to_string_lossy().into_owned();
    let url = src.url_for("postgres");
    let cluster = "phys-kill";
    ferry_testkit::pg_exec(&url, "CREATE TABLE markers (id int PRIMARY KEY, note text)").await;
    ferry_testkit::pg_exec(&url, "INSERT INTO markers VALUES (0, 'before the archive')").await;

    // the archive first (it creates the encrypted repository), then the backup
    let mut archiver = spawn_archiver(cluster, &url, &storage);
    let t0 = Instant::now();
    let repo = loop {
        if let Ok(r) = Repo::open(&storage, Some("physical-test-key")).await {
            if read_head(&r, cluster).await.ok().flatten().is_some() {
                break r;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the archive never started"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(repo.encrypted());
    assert_eq!(
        one(
            &url,
            "SELECT slot_type FROM pg_replication_slots WHERE slot_name = 'ferry_wal_phys_kill'"
        )
        .await,
        "physical"
    );
    let out = ferry(&[
        "backup",
        "now",
        cluster,
        "--method",
        "physical",
        "--source",
        &url,
        "--storage",
        &storage,
        "-q",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "physical backup failed:\n{}",
        text(&out)
    );

    ferry_testkit::pg_exec(&url, "INSERT INTO markers VALUES (1, 'before the kill')").await;
    let _ = Command::new("kill")
        .args(["-KILL", &archiver.0.id().to_string()])
        .status();
    let _ = archiver.0.wait();
    // the source goes on while nothing archives: segments switch
    ferry_testkit::pg_exec(&url, "INSERT INTO markers VALUES (2, 'while killed')").await;
    ferry_testkit::pg_exec(&url, "SELECT pg_switch_wal()").await;
    ferry_testkit::pg_exec(&url, "INSERT INTO markers VALUES (3, 'after a switch')").await;
    ferry_testkit::pg_exec(&url, "SELECT pg_switch_wal()").await;
    archiver = spawn_archiver(cluster, &url, &storage);
    ferry_testkit::pg_exec(&url, "INSERT INTO markers VALUES (4, 'after the restart')").await;
    let end = one(&url, "SELECT pg_current_wal_insert_lsn()").await;
    wait_archived(&repo, cluster, lsn_of(&end), 0).await;
    drop(archiver);

    let dir = work.join("restored");
    let out = restore(&storage, cluster, None, &dir);
    assert!(out.status.success(), "restore failed:\n{}", text(&out));
    let server = Restored::start(&dir);
    server.ready().await;
    let got = lines(&server.url, "SELECT id FROM markers ORDER BY id").await;
    assert_eq!(got, ["0", "1", "2", "3", "4"]);
    drop(server);
    let _ = std::fs::remove_dir_all(&work);
}
