//! TLS settings of an endpoint, from the URL's query parameters.
//!
//! Users already know the words from libpq (`sslmode`, `sslrootcert`, `sslcert`,
//! `sslkey`) and the mysql client (`ssl-mode`, `ssl-ca`, `ssl-cert`, `ssl-key`), so
//! Ferry takes exactly those, with their meanings, and refuses anything else loudly:
//! a mistyped mode must never quietly connect unencrypted. One engine-neutral
//! [`Tls`] value comes out, which each connector turns into its driver's settings.

use crate::{Engine, Error, Result};
use std::path::PathBuf;

/// How much TLS a connection insists on (libpq's `sslmode`, the mysql client's
/// `ssl-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Never encrypt (`disable` / `DISABLED`).
    Disable,
    /// Encrypt if the server offers it, else go on in plain text; the certificate is
    /// not checked (`prefer` / `PREFERRED`, the default of both clients).
    #[default]
    Prefer,
    /// Encrypt or fail; the certificate is not checked (`require` / `REQUIRED`).
    Require,
    /// Encrypt, and the server's certificate must chain to a trusted CA; its name is
    /// not checked (`verify-ca` / `VERIFY_CA`).
    VerifyCa,
    /// Encrypt, trusted chain, and the certificate must be for the host the URL names
    /// (`verify-full` / `VERIFY_IDENTITY`).
    VerifyFull,
}

const MODES: [TlsMode; 5] = [
    TlsMode::Disable,
    TlsMode::Prefer,
    TlsMode::Require,
    TlsMode::VerifyCa,
    TlsMode::VerifyFull,
];

impl TlsMode {
    /// The word the engine's own clients use for this mode.
    pub fn word(self, engine: Engine) -> &'static str {
        match (engine, self) {
            (Engine::Postgres, TlsMode::Disable) => "disable",
            (Engine::Postgres, TlsMode::Prefer) => "prefer",
            (Engine::Postgres, TlsMode::Require) => "require",
            (Engine::Postgres, TlsMode::VerifyCa) => "verify-ca",
            (Engine::Postgres, TlsMode::VerifyFull) => "verify-full",
            (Engine::MySql, TlsMode::Disable) => "DISABLED",
            (Engine::MySql, TlsMode::Prefer) => "PREFERRED",
            (Engine::MySql, TlsMode::Require) => "REQUIRED",
            (Engine::MySql, TlsMode::VerifyCa) => "VERIFY_CA",
            (Engine::MySql, TlsMode::VerifyFull) => "VERIFY_IDENTITY",
        }
    }

    /// Whether the certificate's chain is checked.
    pub fn verifies_chain(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyFull)
    }
}

/// Which of the URL's TLS parameters a value came from (for messages that name it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsParam {
    /// `sslmode` / `ssl-mode`.
    Mode,
    /// `sslrootcert` / `ssl-ca`: the CA certificates to trust.
    RootCert,
    /// `sslcert` / `ssl-cert`: the client's certificate.
    Cert,
    /// `sslkey` / `ssl-key`: the client's private key.
    Key,
}

impl TlsParam {
    /// The parameter's name for `engine`.
    pub fn name(self, engine: Engine) -> &'static str {
        match (engine, self) {
            (Engine::Postgres, TlsParam::Mode) => "sslmode",
            (Engine::Postgres, TlsParam::RootCert) => "sslrootcert",
            (Engine::Postgres, TlsParam::Cert) => "sslcert",
            (Engine::Postgres, TlsParam::Key) => "sslkey",
            (Engine::MySql, TlsParam::Mode) => "ssl-mode",
            (Engine::MySql, TlsParam::RootCert) => "ssl-ca",
            (Engine::MySql, TlsParam::Cert) => "ssl-cert",
            (Engine::MySql, TlsParam::Key) => "ssl-key",
        }
    }
}

const PARAMS: [TlsParam; 4] = [
    TlsParam::Mode,
    TlsParam::RootCert,
    TlsParam::Cert,
    TlsParam::Key,
];

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file of CA certificates.
    File(PathBuf),
    /// The well-known public CAs (libpq's `sslrootcert=system`), for managed
    /// databases whose certificates a public CA signed.
    System,
}

/// An endpoint's TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// The mode as written (default prefer); see [`Tls::effective_mode`].
    pub mode: TlsMode,
    /// CA certificates to trust.
    pub root_cert: Option<RootCerts>,
    /// Client certificate (PEM), for servers that authenticate clients by certificate.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM); never printed, only its path.
    pub key: Option<PathBuf>,
}

/// `value` of the other engine family's `param` in `engine`'s words (a mode's name
/// differs: `require` is `REQUIRED`); paths stay as they are.
fn translated(param: TlsParam, from: Engine, to: Engine, value: &str) -> String {
    if param != TlsParam::Mode {
        return value.to_string();
    }
    MODES
        .iter()
        .find(|m| m.word(from).eq_ignore_ascii_case(value))
        .map(|m| m.word(to).to_string())
        .unwrap_or_else(|| value.to_string())
}

impl Tls {
    /// Reads the TLS parameters from a URL's query for `engine`. Other parameters are
    /// left to their owners; the other engine family's TLS names are refused with the
    /// right one named.
    pub fn from_query<'a>(
        engine: Engine,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Tls> {
        let other = match engine {
            Engine::Postgres => Engine::MySql,
            Engine::MySql => Engine::Postgres,
        };
        let mut tls = Tls::default();
        for (key, value) in pairs {
            if let Some(p) = PARAMS.iter().find(|p| p.name(other) == key) {
                return Err(Error::definite(format!(
                    "the URL parameter {key} is for {} URLs; a {} URL takes {}",
                    engine_name(other),
                    engine_name(engine),
                    p.name(engine)
                ))
                .with_hint(format!(
                    "write {}={}",
                    p.name(engine),
                    translated(*p, other, engine, value)
                )));
            }
            let Some(param) = PARAMS.iter().copied().find(|p| p.name(engine) == key) else {
                continue;
            };
            if value.is_empty() {
                return Err(Error::definite(format!("the URL parameter {key} is empty"))
                    .with_hint(allowed(engine, param)));
            }
            match param {
                TlsParam::Mode => {
                    tls.mode = MODES
                        .into_iter()
                        .find(|m| match engine {
                            Engine::Postgres => m.word(engine) == value,
                            Engine::MySql => m.word(engine).eq_ignore_ascii_case(value),
                        })
                        .ok_or_else(|| {
                            Error::definite(format!("invalid {key} {value:?} in the database URL"))
                                .with_hint(allowed(engine, param))
                        })?;
                }
                TlsParam::RootCert => {
                    tls.root_cert = Some(if engine == Engine::Postgres && value == "system" {
                        RootCerts::System
                    } else {
                        RootCerts::File(PathBuf::from(value))
                    })
                }
                TlsParam::Cert => tls.cert = Some(PathBuf::from(value)),
                TlsParam::Key => tls.key = Some(PathBuf::from(value)),
            }
        }
        if tls.cert.is_some() != tls.key.is_some() {
            let (has, lacks) = if tls.cert.is_some() {
                (TlsParam::Cert, TlsParam::Key)
            } else {
                (TlsParam::Key, TlsParam::Cert)
            };
            return Err(Error::definite(format!(
                "the database URL has {} but no {}",
                has.name(engine),
                lacks.name(engine)
            ))
            .with_hint("a client certificate needs both the certificate file and its key file"));
        }
        if tls.mode == TlsMode::Disable && (tls.root_cert.is_some() || tls.cert.is_some()) {
            return Err(Error::definite(format!(
                "the database URL gives certificates but {}={}",
                TlsParam::Mode.name(engine),
                tls.mode.word(engine)
            ))
            .with_hint(format!(
                "drop the certificate parameters, or use {}={}",
                TlsParam::Mode.name(engine),
                TlsMode::VerifyFull.word(engine)
            )));
        }
        Ok(tls)
    }

    /// The mode that applies: as libpq does, `require` with a CA file given checks
    /// the chain (`verify-ca`); the mysql client's modes get the same rule.
    pub fn effective_mode(&self) -> TlsMode {
        match (self.mode, &self.root_cert) {
            (TlsMode::Require, Some(_)) => TlsMode::VerifyCa,
            (m, _) => m,
        }
    }

    /// The error for a certificate or key file that cannot be read: which parameter,
    /// the path and the operating system's reason (never the file's contents).
    pub fn file_error(
        engine: Engine,
        param: TlsParam,
        path: &std::path::Path,
        why: impl std::fmt::Display,
    ) -> Error {
        Error::definite(format!(
            "cannot use the {} file {}: {why}",
            param.name(engine),
            path.display()
        ))
        .with_hint(match param {
            TlsParam::Key => {
                "the key must be a PEM private key (PKCS#8, PKCS#1 or SEC1) readable by \
                 the user Ferry runs as"
            }
            _ => "the file must be PEM certificates readable by the user Ferry runs as",
        })
    }
}

fn engine_name(e: Engine) -> &'static str {
    match e {
        Engine::Postgres => "PostgreSQL",
        Engine::MySql => "MySQL/MariaDB",
    }
}

fn allowed(engine: Engine, param: TlsParam) -> String {
    match param {
        TlsParam::Mode => format!(
            "{} takes one of: {}",
            param.name(engine),
            MODES
                .iter()
                .map(|m| m.word(engine))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => format!("{} takes a file path", param.name(engine)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(engine: Engine, q: &[(&str, &str)]) -> Result<Tls> {
        Tls::from_query(engine, q.iter().copied())
    }

    #[test]
    fn postgres_words_as_libpq() {
        assert_eq!(parse(Engine::Postgres, &[]).unwrap().mode, TlsMode::Prefer);
        for (w, m) in [
            ("disable", TlsMode::Disable),
            ("prefer", TlsMode::Prefer),
            ("require", TlsMode::Require),
            ("verify-ca", TlsMode::VerifyCa),
            ("verify-full", TlsMode::VerifyFull),
        ] {
            assert_eq!(parse(Engine::Postgres, &[("sslmode", w)]).unwrap().mode, m);
        }
        let t = parse(
            Engine::Postgres,
            &[
                ("sslmode", "verify-full"),
                ("sslrootcert", "/etc/ca.pem"),
                ("sslcert", "/c.pem"),
                ("sslkey", "/k.pem"),
                ("application_name", "x"),
            ],
        )
        .unwrap();
        assert_eq!(t.root_cert, Some(RootCerts::File("/etc/ca.pem".into())));
        assert_eq!(t.cert.as_deref(), Some(std::path::Path::new("/c.pem")));
        assert_eq!(t.key.as_deref(), Some(std::path::Path::new("/k.pem")));
        let sys = parse(Engine::Postgres, &[("sslrootcert", "system")]).unwrap();
        assert_eq!(sys.root_cert, Some(RootCerts::System));
        // libpq is case-sensitive here
        let e = parse(Engine::Postgres, &[("sslmode", "REQUIRE")]).unwrap_err();
        assert!(e.message.contains("invalid sslmode \"REQUIRE\""), "{e}");
        let hint = e.hint.clone().unwrap_or_default();
        assert!(
            hint.contains("disable, prefer, require, verify-ca, verify-full"),
            "{hint}"
        );
    }

    #[test]
    fn mysql_words_any_case() {
        for (w, m) in [
            ("DISABLED", TlsMode::Disable),
            ("preferred", TlsMode::Prefer),
            ("Required", TlsMode::Require),
            ("verify_ca", TlsMode::VerifyCa),
            ("VERIFY_IDENTITY", TlsMode::VerifyFull),
        ] {
            assert_eq!(parse(Engine::MySql, &[("ssl-mode", w)]).unwrap().mode, m);
        }
        let t = parse(
            Engine::MySql,
            &[("ssl-ca", "/ca.pem"), ("ssl-cert", "/c"), ("ssl-key", "/k")],
        )
        .unwrap();
        assert_eq!(t.root_cert, Some(RootCerts::File("/ca.pem".into())));
        let e = parse(Engine::MySql, &[("ssl-mode", "verify-full")]).unwrap_err();
        assert!(e.message.contains("ssl-mode \"verify-full\""), "{e}");
        assert!(e
            .hint
            .unwrap()
            .contains("DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY"));
    }

    #[test]
    fn the_other_familys_names_are_refused_with_the_right_one() {
        let e = parse(Engine::MySql, &[("sslmode", "require")]).unwrap_err();
        assert!(e.message.contains("sslmode is for PostgreSQL URLs"), "{e}");
        assert!(e.message.contains("takes ssl-mode"), "{e}");
        assert_eq!(e.hint.as_deref(), Some("write ssl-mode=REQUIRED"));
        let e = parse(Engine::Postgres, &[("ssl-ca", "/x")]).unwrap_err();
        assert!(e.message.contains("takes sslrootcert"), "{e}");
    }

    #[test]
    fn half_a_client_identity_or_certs_with_disable_are_refused() {
        let e = parse(Engine::Postgres, &[("sslcert", "/c")]).unwrap_err();
        assert!(e.message.contains("sslcert but no sslkey"), "{e}");
        let e = parse(Engine::MySql, &[("ssl-key", "/k")]).unwrap_err();
        assert!(e.message.contains("ssl-key but no ssl-cert"), "{e}");
        let e = parse(
            Engine::Postgres,
            &[("sslmode", "disable"), ("sslrootcert", "/ca")],
        )
        .unwrap_err();
        assert!(e.message.contains("sslmode=disable"), "{e}");
        let e = parse(Engine::Postgres, &[("sslmode", "")]).unwrap_err();
        assert!(e.message.contains("sslmode is empty"), "{e}");
    }

    #[test]
    fn require_with_a_ca_checks_the_chain() {
        let t = parse(
            Engine::Postgres,
            &[("sslmode", "require"), ("sslrootcert", "/ca")],
        )
        .unwrap();
        assert_eq!(t.effective_mode(), TlsMode::VerifyCa);
        let t = parse(Engine::Postgres, &[("sslmode", "require")]).unwrap();
        assert_eq!(t.effective_mode(), TlsMode::Require);
    }

    #[test]
    fn file_errors_name_the_parameter_and_path() {
        let e = Tls::file_error(
            Engine::MySql,
            TlsParam::Key,
            std::path::Path::new("/nope/k.pem"),
            "No such file or directory (os error 2)",
        );
        assert_eq!(
            e.message,
            "cannot use the ssl-key file /nope/k.pem: No such file or directory (os error 2)"
        );
    }
}
