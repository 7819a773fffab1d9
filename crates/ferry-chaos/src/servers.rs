//! The suite's own throwaway servers (never the shared test servers): one source and
//! one target per engine, started with the testkit's starters. A target's data
//! directory lives on a small tmpfs of its own when mounting one works, so the disk
//! can be filled without touching the machine's disk.

use crate::db::Engine;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A server this run started; crashing and restarting keep its port and files.
pub struct Server {
    /// Its engine.
    pub engine: Engine,
    /// `source` or `target` (for messages).
    pub role: &'static str,
    /// Its data directory.
    pub dir: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// The tmpfs it lives on, if any (for the disk-full fault).
    pub tmpfs: Option<PathBuf>,
}

/// PostgreSQL settings on top of the testkit's: commits are durable when
/// acknowledged (the testkit turns that off for speed; a crash test needs it on),
/// and WAL is kept small enough for a tmpfs.
const PG_EXTRA: &str = "-c synchronous_commit=on -c max_wal_size=256MB -c min_wal_size=64MB \
                        -c shared_buffers=64MB -c wal_keep_size=0";

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

/// Mounts a tmpfs of `mb` megabytes at `at`; `Err` says why not (not root, no
/// privilege in this container, …).
pub fn mount_tmpfs(at: &Path, mb: u64) -> Result<()> {
    std::fs::create_dir_all(at)?;
    let out = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={mb}m,mode=0755"),
            "tmpfs",
        ])
        .arg(at)
        .output()
        .context("run mount")?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Server {
    /// Starts a fresh server of `engine` under `base` (on a tmpfs of `tmpfs_mb` MB
    /// when given and mountable; the returned note says when it was not).
    pub fn start(
        engine: Engine,
        role: &'static str,
        base: &Path,
        tmpfs_mb: Option<u64>,
    ) -> Result<(Server, Option<String>)> {
        let home = base.join(format!("{}-{role}", engine.short()));
        let mut note = None;
        let tmpfs = match tmpfs_mb {
            Some(mb) => match mount_tmpfs(&home, mb) {
                Ok(()) => Some(home.clone()),
                Err(e) => {
                    note = Some(format!("no tmpfs for the {role} ({e}): disk-full skipped"));
                    None
                }
            },
            None => None,
        };
        let s = Server {
            engine,
            role,
            dir: home.join("data"),
            port: free_port()?,
            tmpfs,
        };
        s.boot()?;
        Ok((s, note))
    }

    fn boot(&self) -> Result<()> {
        let (dir, port) = (self.dir.clone(), self.port);
        let r = std::panic::catch_unwind(|| match self.engine {
            Engine::Pg => ferry_testkit::start_postgres_with(&dir, port, PG_EXTRA),
            Engine::My => ferry_testkit::start_mariadb(&dir, port),
        });
        if r.is_err() || !port_open(port) {
            bail!(
                "the {} {} server in {} did not start (see its log there)",
                self.role,
                self.engine.short(),
                dir.display()
            );
        }
        Ok(())
    }

    /// Admin URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        match self.engine {
            Engine::Pg => format!("postgres://postgres@127.0.0.1:{}/{db}", self.port),
            Engine::My => format!("mysql://root@127.0.0.1:{}/{db}", self.port),
        }
    }

    /// Crashes the server: PostgreSQL `pg_ctl stop -m immediate` (every process
    /// quits at once, no checkpoint: crash recovery at the next start), MariaDB
    /// kill -9 of `mariadbd`.
    pub fn crash(&self) {
        match self.engine {
            Engine::Pg => {
                let d = self.dir.clone();
                let _ = std::panic::catch_unwind(move || ferry_testkit::stop_postgres(&d));
            }
            Engine::My => {
                if let Some(pid) = self.mariadb_pid() {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                    let t0 = Instant::now();
                    while std::path::Path::new(&format!("/proc/{pid}/status")).exists()
                        && !zombie(pid)
                        && t0.elapsed() < Duration::from_secs(10)
                    {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
    }

    fn mariadb_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("mysqld.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    /// Starts the server again after a crash (crash recovery runs).
    pub fn restart(&self) -> Result<()> {
        self.boot()
    }

    /// Whether it accepts connections.
    pub fn up(&self) -> bool {
        port_open(self.port)
    }

    /// Restarts the server if it is down (it may have stopped by itself, e.g.
    /// PostgreSQL after a PANIC on a full disk); true when it had to.
    pub fn ensure_up(&self) -> Result<bool> {
        if self.up() {
            return Ok(false);
        }
        if self.engine == Engine::Pg {
            // a postmaster that is still shutting down must finish first
            self.crash();
        }
        self.restart()?;
        Ok(true)
    }

    /// Stops the server for good and frees its files (and its tmpfs).
    pub fn destroy(&self) {
        match self.engine {
            Engine::Pg => self.crash(),
            Engine::My => ferry_testkit::stop_mariadb(&self.dir),
        }
        if let Some(t) = &self.tmpfs {
            let _ = Command::new("umount").arg(t).status();
        }
        let _ = std::fs::remove_dir_all(self.dir.parent().unwrap_or(&self.dir));
    }
}

fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|st| {
            st.rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Fills the tmpfs at `dir` with a ballast file until it is full; returns the
/// ballast's path (delete it to free the space) and how many MB it took.
pub fn fill_disk(dir: &Path) -> Result<(PathBuf, u64)> {
    use std::io::Write;
    let path = dir.join("chaos-ballast");
    let mut f = std::fs::File::create(&path)?;
    let block = vec![0u8; 1 << 20];
    let mut mb = 0;
    while f.write_all(&block).is_ok() {
        mb += 1;
    }
    // the last partial block: fill the remaining bytes too
    let mut small = vec![0u8; 4096];
    while f.write_all(&small).is_ok() {}
    small.clear();
    Ok((path, mb))
}
