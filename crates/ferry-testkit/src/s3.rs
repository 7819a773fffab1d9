//! A throwaway S3-protocol server for tests: moto's server (`moto[server,s3]` from
//! PyPI, installed by `scripts/install-deps.sh` into `~/.cache/ferry/s3-venv`),
//! started on 127.0.0.1 by the test itself, in memory, killed when the [`S3Server`]
//! guard drops — and also when the test process dies without dropping it (the
//! server exits when its standard input, a pipe from the test, closes).
//!
//! The Python interpreter is `FERRY_S3_PYTHON` when set, else the venv's, else
//! `python3` from `PATH` when it has moto.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key id the test server accepts (moto accepts any).
pub const ACCESS_KEY_ID: &str = "ferrytestkey";
/// The secret access key of [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "ferrytestsecret";

/// A running S3-protocol server; dropped, it is killed.
pub struct S3Server {
    child: Child,
    port: u16,
}

/// The Python the server runs under, with moto importable.
fn python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("FERRY_S3_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cache/ferry/s3-venv/bin/python"));
    }
    candidates.push(PathBuf::from("python3"));
    for c in candidates {
        let ok = Command::new(&c)
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Ok(c);
        }
    }
    Err(
        "no Python with moto's server found: run scripts/install-deps.sh \
         (it installs moto[server] into ~/.cache/ferry/s3-venv), or set FERRY_S3_PYTHON"
            .to_string(),
    )
}

/// Runs moto's server and exits when standard input closes (the test died).
const LAUNCH: &str = "import os, sys, threading\n\
def _watch():\n    sys.stdin.buffer.read()\n    os._exit(0)\n\
threading.Thread(target=_watch, daemon=True).start()\n\
from moto.server import main\n\
main(['-H', '127.0.0.1', '-p', sys.argv[1]])\n";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

impl S3Server {
    /// Starts a server on a free local port and waits until it answers. Panics
    /// (with how to fix it) when moto is not installed.
    pub fn start() -> S3Server {
        S3Server::start_with_env(&[])
    }

    /// Starts a server with extra environment for moto (e.g.
    /// `INITIAL_NO_AUTH_ACTION_COUNT=2`: every request after the readiness probe and
    /// the bucket creation is checked
    /// against moto's IAM, so unknown credentials are refused).
    pub fn start_with_env(env: &[(&str, &str)]) -> S3Server {
        let py = python().unwrap_or_else(|e| panic!("{e}"));
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&py)
                .args(["-c", LAUNCH, &port.to_string()])
                .envs(env.iter().copied())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("starting moto's S3 server with {}: {e}", py.display()));
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(Some(st)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    last = format!("moto's S3 server exited ({st}): {err}");
                    break;
                }
                if http(port, "GET", "/", b"").is_ok_and(|(code, _)| code < 500) {
                    // stderr is a pipe: drain it so the server never blocks on it.
                    if let Some(mut e) = child.stderr.take() {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut e, &mut std::io::sink());
                        });
                    }
                    return S3Server { child, port };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = "moto's S3 server did not answer within 60 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("{last}");
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint URL (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates bucket `name` (path-style, as Ferry talks to it).
    pub fn create_bucket(&self, name: &str) {
        let (code, body) = http(self.port, "PUT", &format!("/{name}"), b"")
            .unwrap_or_else(|e| panic!("creating bucket {name}: {e}"));
        assert!(code < 300, "creating bucket {name}: HTTP {code}: {body}");
    }

    /// A Ferry storage URL for `prefix` in `bucket` on this server.
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        let p = prefix.trim_matches('/');
        let sep = if p.is_empty() { "" } else { "/" };
        format!(
            "s3://{bucket}{sep}{p}?endpoint={}&region=us-east-1",
            self.endpoint()
        )
    }

    /// The credentials environment for a child process (`ferry` binaries).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_string()),
        ]
    }

    /// Sets the credentials in this process's environment (each nextest test is a
    /// process of its own).
    pub fn set_env(&self) {
        for (k, v) in self.env() {
            std::env::set_var(k, v);
        }
        std::env::remove_var("AWS_SESSION_TOKEN");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One plain HTTP/1.1 request to the server: status code and body.
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:.200}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    Ok((code, body))
}
