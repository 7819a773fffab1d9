//! Certificates made by the tests themselves, for servers with TLS: a CA, a server
//! certificate for 127.0.0.1 (and `localhost`), a second server certificate for another
//! name (`db.invalid`, to be refused under verify-full), a client certificate (user
//! `ferry`) and a CA nobody uses to sign the servers (to be refused as untrusted).
//!
//! Nothing is downloaded or shared between tests: each call makes fresh keys into a
//! folder of its own, deleted when the [`Certs`] is dropped.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8, mode 0600).
    pub key: PathBuf,
}

/// The files of one test's certificates.
#[derive(Debug)]
pub struct Certs {
    /// The folder holding them.
    pub dir: PathBuf,
    /// The CA that signed the servers' and the client's certificates.
    pub ca: PathBuf,
    /// A CA that signed nothing here (for "not trusted").
    pub other_ca: PathBuf,
    /// Server certificate for 127.0.0.1 and localhost.
    pub server: CertFiles,
    /// Server certificate for `db.invalid` only.
    pub other_name: CertFiles,
    /// Client certificate for the user `ferry`.
    pub client: CertFiles,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA: its certificate and key.
struct Authority(Certificate, KeyPair);

fn ca(name: &str) -> Authority {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    Authority(p.self_signed(&key).expect("CA"), key)
}

fn leaf(
    issuer: &Authority,
    common_name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("params");
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, &issuer.0, &issuer.1).expect("sign");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write certificate file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// Makes a fresh set of certificates into a folder named after `name` (unique per
/// test) under the test servers' folder (which the server users can reach).
pub fn make(name: &str) -> Certs {
    let dir = crate::server::root_dir().join(format!("certs-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("certs dir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let authority = ca("Ferry test CA");
    let stranger = ca("Ferry test CA nobody trusts");
    let ca_path = write(&dir, "ca.pem", &authority.0.pem(), 0o644);
    let other_ca = write(&dir, "other-ca.pem", &stranger.0.pem(), 0o644);
    let files = |stem: &str, (cert, key): (String, String)| CertFiles {
        cert: write(&dir, &format!("{stem}.pem"), &cert, 0o644),
        key: write(&dir, &format!("{stem}.key"), &key, 0o600),
    };
    let server = files(
        "server",
        leaf(
            &authority,
            "127.0.0.1",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
    );
    let other_name = files(
        "other-name",
        leaf(
            &authority,
            "db.invalid",
            &["db.invalid"],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
    );
    let client = files(
        "client",
        leaf(
            &authority,
            "ferry",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    );
    Certs {
        dir,
        ca: ca_path,
        other_ca,
        server,
        other_name,
        client,
    }
}

impl Certs {
    /// Copies a server certificate and key to `server-in-use.{pem,key}`, owned by
    /// `user` when running as root (PostgreSQL refuses a key another user can read,
    /// and its server runs as `postgres`); servers point at those paths, so a test
    /// swaps the certificate with this and a reload.
    pub fn use_server_cert(&self, which: &CertFiles, user: &str) -> CertFiles {
        let cert = self.dir.join("server-in-use.pem");
        let key = self.dir.join("server-in-use.key");
        std::fs::copy(&which.cert, &cert).expect("copy certificate");
        let _ = std::fs::remove_file(&key);
        std::fs::copy(&which.key, &key).expect("copy key");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        if crate::server::is_root() {
            let status = std::process::Command::new("chown")
                .arg(format!("{user}:"))
                .arg(&key)
                .arg(&cert)
                .status()
                .expect("chown");
            assert!(status.success(), "chown {user} {}", key.display());
        }
        CertFiles { cert, key }
    }
}
