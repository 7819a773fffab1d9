//! TLS for MySQL/MariaDB connections: the endpoint's `ssl-mode`, `ssl-ca`, `ssl-cert`
//! and `ssl-key` as `mysql_async`'s rustls options (ring provider), and the sorting of
//! its TLS failures into the reasons users can act on.
//!
//! The modes mean what the mysql client means: PREFERRED and REQUIRED encrypt without
//! checking the certificate, VERIFY_CA checks the chain, VERIFY_IDENTITY the chain and
//! the host name. The files are read here, so an unreadable one is reported with its
//! parameter and path rather than as a bare I/O error from inside the driver.

use ferry_core::connect::ConnectFailure;
use ferry_core::tls::{RootCerts, Tls, TlsMode, TlsParam};
use ferry_core::{Endpoint, Engine, Result};
use mysql_async::{ClientIdentity, SslOpts};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::CertificateError;

/// The driver's TLS options for `ep`, or `None` for DISABLED.
pub fn ssl_opts(ep: &Endpoint) -> Result<Option<SslOpts>> {
    // mysql_async builds its rustls configuration with the process default provider
    let _ =
        rustls::crypto::CryptoProvider::install_default(rustls::crypto::ring::default_provider());
    let tls = &ep.tls;
    let mode = tls.effective_mode();
    // no TLS over a Unix socket (local; the driver would ask the server for TLS and
    // then not start it)
    if mode == TlsMode::Disable || ep.socket.is_some() {
        return Ok(None);
    }
    // PREFERRED against a server already found to have no TLS: no second attempt
    if mode == TlsMode::Prefer && knows_no_tls(ep) {
        return Ok(None);
    }
    let mut ssl = SslOpts::default();
    match &tls.root_cert {
        Some(RootCerts::File(path)) => {
            let pem = read(TlsParam::RootCert, path)?;
            let n = CertificateDer::pem_slice_iter(&pem)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Tls::file_error(Engine::MySql, TlsParam::RootCert, path, e))?
                .len();
            if n == 0 {
                return Err(Tls::file_error(
                    Engine::MySql,
                    TlsParam::RootCert,
                    path,
                    "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                ));
            }
            // only the CA the URL names is trusted, not the public ones as well
            ssl = ssl
                .with_root_certs(vec![pem.into()])
                .with_disable_built_in_roots(true);
        }
        // no ssl-ca: the mysql client checks against the system's CAs; the driver's
        // built-in public CAs play that part
        Some(RootCerts::System) | None => {}
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        let cert_pem = read(TlsParam::Cert, cert)?;
        let key_pem = read(TlsParam::Key, key)?;
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
            Tls::file_error(
                Engine::MySql,
                TlsParam::Key,
                key,
                "it holds no PEM private key this client can read",
            )
        })?;
        ssl = ssl.with_client_identity(Some(ClientIdentity::new(cert_pem.into(), key_pem.into())));
    }
    ssl = match mode {
        TlsMode::Prefer | TlsMode::Require => ssl.with_danger_accept_invalid_certs(true),
        TlsMode::VerifyCa => ssl.with_danger_skip_domain_validation(true),
        _ => ssl,
    };
    Ok(Some(ssl))
}

/// Servers (host, port) found without TLS under PREFERRED in this process, so each
/// later connection to them does not first try TLS and fail.
static NO_TLS: std::sync::Mutex<Vec<(String, u16)>> = std::sync::Mutex::new(Vec::new());

fn knows_no_tls(ep: &Endpoint) -> bool {
    NO_TLS
        .lock()
        .map(|v| v.iter().any(|(h, p)| *h == ep.host && *p == ep.port))
        .unwrap_or(false)
}

/// Remembers that `ep`'s server offered no TLS (PREFERRED then goes plain at once).
pub fn remember_no_tls(ep: &Endpoint) {
    if let Ok(mut v) = NO_TLS.lock() {
        if !v.iter().any(|(h, p)| *h == ep.host && *p == ep.port) {
            v.push((ep.host.clone(), ep.port));
        }
    }
}

fn read(param: TlsParam, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Tls::file_error(Engine::MySql, param, path, e))
}

/// The rustls error inside a driver error, if the failure was TLS's.
pub fn rustls_error(e: &mysql_async::Error) -> Option<&rustls::Error> {
    use mysql_async::{Error as E, IoError};
    match e {
        E::Io(IoError::Tls(mysql_async::TlsError::Tls(r))) => Some(r),
        E::Io(IoError::Io(io)) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}

/// Which reason a rustls failure is, with rustls's words (which name the host and the
/// names the certificate is for, when those differ).
pub fn failure(e: &rustls::Error) -> (ConnectFailure, String) {
    let f = match e {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => ConnectFailure::CertName,
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => ConnectFailure::CertUntrusted,
        _ => ConnectFailure::TlsHandshake,
    };
    (f, e.to_string())
}

/// Under VERIFY_CA, a name the server's certificate is for, when the certificate
/// failed only on the name: the driver's own "skip the name" switch no longer
/// recognises rustls's name error, so the connection is retried expecting this name.
pub fn presented_name(e: &mysql_async::Error) -> Option<String> {
    match rustls_error(e)? {
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented,
            ..
        }) => presented.iter().find_map(|p| name_of(p)),
        _ => None,
    }
}

/// A name from WebPKI's description of a certificate's names (`DnsName("db.example")`,
/// `IpAddress(10.0.0.1)`); a wildcard's first label is filled in.
fn name_of(presented: &str) -> Option<String> {
    if let Some(dns) = presented
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
    {
        return Some(match dns.strip_prefix("*.") {
            Some(rest) => format!("any.{rest}"),
            None => dns.to_string(),
        });
    }
    presented
        .strip_prefix("IpAddress(")
        .and_then(|r| r.strip_suffix(')'))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_from_webpki_descriptions() {
        assert_eq!(
            super::name_of("DnsName(\"db.invalid\")").as_deref(),
            Some("db.invalid")
        );
        assert_eq!(
            super::name_of("DnsName(\"*.corp.example\")").as_deref(),
            Some("any.corp.example")
        );
        assert_eq!(
            super::name_of("IpAddress(10.1.2.3)").as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(super::name_of("DirectoryName"), None);
    }
}
