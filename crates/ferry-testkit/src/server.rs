//! Starting, finding and stopping the shared throwaway servers.

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// A running test server.
#[derive(Debug, Clone)]
pub struct Server {
    /// `postgres` or `mysql`.
    pub scheme: &'static str,
    /// Host.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Admin user.
    pub user: String,
    /// Data directory when we started it (None for external servers).
    pub dir: Option<PathBuf>,
}

impl Server {
    /// URL of database `db` on this server (empty `db` = no database).
    pub fn url_for(&self, db: &str) -> String {
        format!(
            "{}://{}@{}:{}/{}",
            self.scheme, self.user, self.host, self.port, db
        )
    }
}

/// Where the servers live: `FERRY_TESTKIT_DIR`, else a folder under the system temp
/// dir named after this checkout (the `postgres` and `mysql` users must be able to
/// reach it, which a checkout under `/root` would not allow).
pub(crate) fn root_dir() -> PathBuf {
    let d = match std::env::var_os("FERRY_TESTKIT_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            Path::new(env!("CARGO_MANIFEST_DIR")).hash(&mut h);
            std::env::temp_dir().join(format!("ferry-testkit-{:016x}", h.finish()))
        }
    };
    fs::create_dir_all(&d).expect("create the test server folder");
    if is_root() {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o755));
    }
    d
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

fn with_lock<T>(name: &str, f: impl FnOnce(&Path) -> T) -> T {
    let dir = root_dir();
    let lock = fs::File::create(dir.join(format!("{name}.lock"))).expect("lock file");
    lock.lock().expect("lock");
    let r = f(&dir);
    lock.unlock().ok();
    r
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pg_bindir() -> PathBuf {
    let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|r| r.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .filter(|p| p.join("initdb").exists())
        .expect("PostgreSQL server binaries not found under /usr/lib/postgresql; run scripts/install-deps.sh")
}

/// As root, PostgreSQL must run as the `postgres` user.
fn as_pg_user(bin: PathBuf) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn external(var: &str, scheme: &'static str) -> Option<Server> {
    let u = url::Url::parse(&std::env::var(var).ok()?).ok()?;
    Some(Server {
        scheme,
        host: u.host_str()?.to_string(),
        port: u.port()?,
        user: u.username().to_string(),
        dir: None,
    })
}

/// The shared PostgreSQL test server (started on first use).
pub fn postgres() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        external("FERRY_TEST_PG_URL", "postgres").unwrap_or_else(|| {
            with_lock("pg", |root| {
                let dir = root.join("pg");
                let port_file = root.join("pg.port");
                if let Some(port) = fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                {
                    if port_open(port) {
                        return pg_server(port, dir);
                    }
                }
                let port = free_port();
                start_postgres(&dir, port);
                fs::write(&port_file, port.to_string()).expect("write port");
                pg_server(port, dir)
            })
        })
    })
}

fn pg_server(port: u16, dir: PathBuf) -> Server {
    Server {
        scheme: "postgres",
        host: "127.0.0.1".into(),
        port,
        user: "postgres".into(),
        dir: Some(dir),
    }
}

/// Initialises (if needed) and starts a PostgreSQL server in `dir` on `port`.
pub fn start_postgres(dir: &Path, port: u16) {
    start_postgres_with(dir, port, "");
}

/// [`start_postgres`] with more server options (`-c wal_level=replica`: later
/// options override the defaults).
pub fn start_postgres_with(dir: &Path, port: u16, extra: &str) {
    let bin = pg_bindir();
    if !dir.join("PG_VERSION").exists() {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).expect("pg dir");
        if is_root() {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir));
        }
        run(as_pg_user(bin.join("initdb")).args(["-D"]).arg(dir).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]));
    }
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c wal_level=logical \
         -c max_replication_slots=200 -c max_wal_senders=200 -c max_connections=300 \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
         -c shared_buffers=256MB -c max_wal_size=2GB {extra}",
        dir.display()
    );
    run(as_pg_user(bin.join("pg_ctl"))
        .arg("-D")
        .arg(dir)
        .arg("-l")
        .arg(dir.join("server.log"))
        .args(["-o", &opts, "-w", "-t", "60", "start"])
        .stdin(Stdio::null()));
}

/// A server of the calling test's own. Derefs to [`Server`]. Dropping it stops the
/// server, and deletes its files unless the test is failing (they are kept for
/// debugging; the next start of the same name deletes them).
#[derive(Debug)]
pub struct PrivateServer(Server);

impl std::ops::Deref for PrivateServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.0
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let Some(dir) = self.0.dir.clone() else {
            return;
        };
        if self.0.scheme == "postgres" {
            stop_postgres_quietly(&dir, "immediate");
        } else {
            stop_mariadb(&dir);
        }
        if std::thread::panicking() {
            eprintln!("test failed: keeping the files of {}", dir.display());
        } else {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// A PostgreSQL server of the calling test's own (for tests that stop and restart
/// it); `name` must be unique among tests. Stopped when the guard is dropped.
pub fn private_postgres(name: &str) -> PrivateServer {
    private_postgres_with(name, "")
}

/// [`private_postgres`] with more server options (see [`start_postgres_with`]).
pub fn private_postgres_with(name: &str, extra: &str) -> PrivateServer {
    let dir = root_dir().join(format!("pg-private-{name}"));
    stop_postgres_quietly(&dir, "immediate");
    let _ = fs::remove_dir_all(&dir);
    let port = free_port();
    start_postgres_with(&dir, port, extra);
    PrivateServer(pg_server(port, dir))
}

/// Stops the PostgreSQL server in `dir` if one runs there; never fails.
fn stop_postgres_quietly(dir: &Path, mode: &str) {
    if dir.join("postmaster.pid").exists() {
        let _ = as_pg_user(pg_bindir().join("pg_ctl"))
            .arg("-D")
            .arg(dir)
            .args(["-m", mode, "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Stops the PostgreSQL server in `dir` at once (`immediate`: like a crash).
pub fn stop_postgres(dir: &Path) {
    run(as_pg_user(pg_bindir().join("pg_ctl"))
        .arg("-D")
        .arg(dir)
        .args(["-m", "immediate", "-w", "stop"])
        .stdin(Stdio::null()));
}

/// The shared MariaDB test server (started on first use).
pub fn mariadb() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        external("FERRY_TEST_MYSQL_URL", "mysql").unwrap_or_else(|| {
            with_lock("mariadb", |root| {
                let dir = root.join("mariadb");
                let port_file = root.join("mariadb.port");
                if let Some(port) = fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                {
                    if port_open(port) {
                        return my_server(port, dir);
                    }
                }
                let port = free_port();
                start_mariadb(&dir, port);
                fs::write(&port_file, port.to_string()).expect("write port");
                my_server(port, dir)
            })
        })
    })
}

fn my_server(port: u16, dir: PathBuf) -> Server {
    Server {
        scheme: "mysql",
        host: "127.0.0.1".into(),
        port,
        user: "root".into(),
        dir: Some(dir),
    }
}

/// A MariaDB server of the calling test's own (for tests that change server-wide
/// settings such as `read_only`); `name` must be unique among tests. Stopped when the
/// guard is dropped.
pub fn private_mariadb(name: &str) -> PrivateServer {
    private_mariadb_with(name, &[])
}

/// [`private_mariadb`] with more server options (`--ssl-cert=…`).
pub fn private_mariadb_with(name: &str, extra: &[String]) -> PrivateServer {
    let dir = root_dir().join(format!("mariadb-private-{name}"));
    stop_mariadb(&dir);
    let _ = fs::remove_dir_all(&dir);
    let port = free_port();
    start_mariadb_with(&dir, port, extra);
    PrivateServer(my_server(port, dir))
}

/// Stops the MariaDB server started in `dir` (its pid file), if it runs: a clean
/// shutdown, then a kill after 60 s. Never fails.
pub fn stop_mariadb(dir: &Path) {
    let Some(pid) = fs::read_to_string(dir.join("mysqld.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return;
    };
    // a server this process started stays a zombie until we exit: that counts as gone
    let alive = || {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|st| {
                st.rsplit_once(") ")
                    .is_some_and(|(_, rest)| !rest.starts_with('Z'))
            })
            .unwrap_or(false)
    };
    let signal = |sig: &str| {
        let _ = Command::new("kill")
            .args([sig, &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    };
    signal("-TERM");
    let t0 = Instant::now();
    while alive() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive() {
        signal("-KILL");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Stops the shared servers of this checkout and any private server a failed test
/// left running; with `clean`, deletes their files too (the next test run starts
/// fresh ones). External servers (`FERRY_TEST_*_URL`) are not touched.
pub fn stop_shared(clean: bool) {
    let root = root_dir();
    let entries: Vec<PathBuf> = fs::read_dir(&root)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    for dir in entries.iter().filter(|p| p.is_dir()) {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        if name == "pg" || name.starts_with("pg-private-") {
            stop_postgres_quietly(dir, "fast");
        } else if name == "mariadb" || name.starts_with("mariadb-private-") {
            stop_mariadb(dir);
        }
    }
    if clean {
        let _ = fs::remove_dir_all(&root);
    }
}

/// Initialises (if needed) and starts a MariaDB server in `dir` on `port`, with the
/// settings change capture needs (ROW binlog, full row image and metadata).
pub fn start_mariadb(dir: &Path, port: u16) {
    start_mariadb_with(dir, port, &[]);
}

/// [`start_mariadb`] with more server options (later options override earlier ones).
pub fn start_mariadb_with(dir: &Path, port: u16, extra: &[String]) {
    let data = dir.join("data");
    let user = if is_root() { "mysql" } else { "" };
    let fresh = !data.join("mysql").exists();
    if fresh {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(&data).expect("mariadb dir");
        if is_root() {
            run(Command::new("chown").args(["-R", "mysql:mysql"]).arg(dir));
        }
        let mut c = Command::new("mariadb-install-db");
        c.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if !user.is_empty() {
            c.arg(format!("--user={user}"));
        }
        run(&mut c);
    }
    let sock = dir.join("mysqld.sock");
    let mut c = Command::new("mariadbd");
    c.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", sock.display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg(format!("--log-error={}", dir.join("error.log").display()))
        .arg(format!("--log-bin={}", dir.join("binlog").display()))
        .args([
            "--server-id=1",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL",
            "--local-infile=1",
            "--innodb-flush-log-at-trx-commit=2",
            "--sync-binlog=0",
            "--innodb-buffer-pool-size=256M",
            "--innodb-log-file-size=256M",
            "--max-connections=300",
            "--max-allowed-packet=256M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
        ])
        .args(extra);
    if !user.is_empty() {
        c.arg(format!("--user={user}"));
    }
    use std::os::unix::process::CommandExt;
    c.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // detached on purpose: the server outlives this test process and is shared with
    // the others; when this process exits, init reaps it
    #[allow(clippy::zombie_processes)]
    let _server = c.spawn().expect("start mariadbd");
    let t0 = Instant::now();
    while !(port_open(port) && sock.exists()) {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "MariaDB did not start; see {}",
            dir.join("error.log").display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    if fresh {
        run(Command::new("mariadb")
            .arg(format!("--socket={}", sock.display()))
            .args(["-uroot", "-e"])
            .arg(
                "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; \
                 GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; \
                 CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY ''; \
                 GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION; FLUSH PRIVILEGES;",
            ));
    }
}

/// A PostgreSQL server of the calling test's own with TLS on: the server certificate
/// of `certs` (for 127.0.0.1), its CA for client certificates, and `hba` as the whole
/// of pg_hba.conf (e.g. `hostssl` lines only).
pub fn private_postgres_tls(name: &str, certs: &crate::Certs, hba: &str) -> PrivateServer {
    let files = certs.use_server_cert(&certs.server, "postgres");
    let server = private_postgres_with(
        name,
        &format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c ssl_ca_file={}",
            files.cert.display(),
            files.key.display(),
            certs.ca.display()
        ),
    );
    set_pg_hba(&server, hba);
    server
}

/// Replaces the pg_hba.conf of a server this process started and reloads it (which
/// also reloads its TLS certificate files).
pub fn set_pg_hba(server: &Server, hba: &str) {
    let dir = server.dir.as_ref().expect("a server started by the tests");
    fs::write(dir.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
    reload_postgres(server);
}

/// Reloads the configuration of a PostgreSQL server this process started.
pub fn reload_postgres(server: &Server) {
    let dir = server.dir.as_ref().expect("a server started by the tests");
    run(as_pg_user(pg_bindir().join("pg_ctl"))
        .arg("-D")
        .arg(dir)
        .arg("reload")
        .stdin(Stdio::null()));
    // the postmaster rereads its files on SIGHUP, a moment after pg_ctl returns
    std::thread::sleep(Duration::from_millis(500));
}

/// A MariaDB server of the calling test's own with TLS on (the server certificate of
/// `certs`, its CA for client certificates) and `extra` options
/// (`--require-secure-transport=ON`).
pub fn private_mariadb_tls(name: &str, certs: &crate::Certs, extra: &[&str]) -> PrivateServer {
    let files = certs.use_server_cert(&certs.server, "mysql");
    let mut opts = vec![
        format!("--ssl-cert={}", files.cert.display()),
        format!("--ssl-key={}", files.key.display()),
        format!("--ssl-ca={}", certs.ca.display()),
    ];
    opts.extend(extra.iter().map(|s| s.to_string()));
    private_mariadb_with(name, &opts)
}
