//! `ferry serve --tls-cert/--tls-key`: the API over HTTPS with a certificate from a
//! private CA made by the test; the CLI reaches it when given the CA; plain HTTP and
//! a client without the CA are refused; bad flags and files stop the start with a
//! clear error.

use crate::common::text;
use crate::harness::ADMIN;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A test CA and a server certificate for 127.0.0.1 it signed, as PEM files:
/// (ca.pem, server.pem, server.key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Ferry test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut srv = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    srv.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    let srv = srv.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, srv.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    (paths.0, paths.1, paths.2)
}

/// A `ferry serve` process, killed when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path, port: u16, extra: &[&std::ffi::OsStr]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.args([
        "serve",
        "--no-worker",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .arg("--data-dir")
    .arg(dir.join("data"))
    .args(extra)
    .env("FERRY_ADMIN_TOKEN", ADMIN)
    .env_remove("FERRY_TLS_CERT")
    .env_remove("FERRY_TLS_KEY")
    .stdin(Stdio::null());
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The API and the CLI over HTTPS with the CA; plain HTTP to the port fails, and a
/// client without the CA is refused with an error that says to give it.
#[tokio::test(flavor = "multi_thread")]
async fn the_service_speaks_https_to_clients_that_trust_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let _srv = Serve(
        serve(
            dir.path(),
            port,
            &[
                "--tls-cert".as_ref(),
                cert.as_os_str(),
                "--tls-key".as_ref(),
                key.as_os_str(),
            ],
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap(),
    );
    let base = format!("https://127.0.0.1:{port}");
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let t0 = Instant::now();
    while trusting
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "serve did not come up over HTTPS:\n{}",
            std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = trusting
        .post(format!("{base}/api/v1/tenants"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "secure", "balance": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    // the audit log has the client's address over TLS too
    let v: serde_json::Value = trusting
        .get(format!("{base}/api/v1/audit"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["entries"][0]["status"], 201, "{v:#}");
    assert!(
        v["entries"][0]["remote"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{v:#}"
    );
    let log_text = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(
        log_text.contains(&format!("API on https://127.0.0.1:{port}")),
        "{log_text}"
    );

    // plain HTTP to the HTTPS port gets no answer
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    // a client that does not trust the CA is refused
    let untrusting = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(untrusting.is_err(), "{untrusting:?}");
    // the service goes on answering afterwards
    assert_eq!(
        trusting
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    let cli = |server: &str, args: &[&str], ca: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        c.args(args)
            .env("FERRY_SERVER", server)
            .env("FERRY_ADMIN_TOKEN", ADMIN)
            .env_remove("FERRY_TOKEN")
            .env_remove("FERRY_CA_CERT");
        if let Some(ca) = ca {
            c.env("FERRY_CA_CERT", ca);
        }
        c.output().unwrap()
    };
    let o = cli(&base, &["tenant", "show", "secure"], Some(&ca));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("tenant secure"), "{}", text(&o));
    let o = cli(
        &base,
        &[
            "tenant",
            "create",
            "viaflag",
            "--ca-cert",
            ca.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&base, &["tenant", "show", "secure"], None);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("does not trust") && t.contains("--ca-cert"),
        "{t}"
    );
    let o = cli(
        &format!("http://127.0.0.1:{port}"),
        &["tenant", "show", "secure"],
        Some(&ca),
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("https://"), "{t}");
    let o = cli(&base, &["tenant", "show", "secure"], Some(&key));
    assert!(
        !o.status.success() && text(&o).contains("server.key"),
        "{}",
        text(&o)
    );
}

/// `--tls-cert` without `--tls-key` (and the reverse) is refused before anything
/// starts; a certificate file that is not PEM, a missing key file, and a key that
/// does not belong to the certificate are named in the error.
#[test]
fn bad_tls_settings_stop_the_start_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let run = |extra: &[&std::ffi::OsStr]| {
        let o = serve(dir.path(), free_port(), extra).output().unwrap();
        assert!(!o.status.success(), "started: {}", text(&o));
        text(&o)
    };
    let t = run(&["--tls-cert".as_ref(), cert.as_os_str()]);
    assert!(t.contains("--tls-key"), "{t}");
    let t = run(&["--tls-key".as_ref(), key.as_os_str()]);
    assert!(t.contains("--tls-cert"), "{t}");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "hello").unwrap();
    let t = run(&[
        "--tls-cert".as_ref(),
        junk.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
    ]);
    assert!(
        t.contains("junk.pem") && t.contains("no certificate"),
        "{t}"
    );
    let missing = dir.path().join("missing.key");
    let t = run(&[
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        missing.as_os_str(),
    ]);
    assert!(
        t.contains("missing.key") && t.contains("cannot read"),
        "{t}"
    );
    // the CA's certificate with the server's key: they do not fit
    let t = run(&[
        "--tls-cert".as_ref(),
        ca.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
    ]);
    assert!(
        t.contains("does not fit") || t.contains("not usable"),
        "{t}"
    );
}
