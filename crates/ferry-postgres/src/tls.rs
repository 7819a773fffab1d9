//! TLS for PostgreSQL connections, over rustls with the ring provider (no OpenSSL).
//!
//! Both kinds of connection use it: `tokio-postgres` sessions through the
//! [`MakeTlsConnect`] implementation here, and the hand-written replication
//! connection through [`negotiate`], which speaks the SSLRequest itself. The modes mean
//! what libpq means: `prefer` and `require` encrypt without checking the certificate
//! (its handshake signature is still checked), `verify-ca` checks the chain but not the
//! name, `verify-full` checks both.

use ferry_core::connect::ConnectFailure;
use ferry_core::tls::{RootCerts, Tls, TlsMode, TlsParam};
use ferry_core::{Endpoint, Engine, Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// The one crypto provider of the process. Installed as the process default too, so
/// drivers that build their own rustls configurations (sqlx, mysql_async) find it
/// instead of panicking for want of one.
pub fn provider() -> Arc<CryptoProvider> {
    let p = Arc::new(rustls::crypto::ring::default_provider());
    // already installed (by this or another driver) is fine
    let _ = CryptoProvider::install_default(rustls::crypto::ring::default_provider());
    p
}

/// The rustls client configuration for `ep`, or `None` when its mode is `disable`.
pub fn client_config(ep: &Endpoint) -> Result<Option<Arc<ClientConfig>>> {
    let tls = &ep.tls;
    let mode = tls.effective_mode();
    // as libpq: no TLS over a Unix socket (local, and the server has no name to check)
    if mode == TlsMode::Disable || ep.socket.is_some() {
        return Ok(None);
    }
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = if mode.verifies_chain() {
        let roots = root_store(ep)?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| Error::definite(format!("cannot build the TLS verifier for {ep}: {e}")))?;
        if mode == TlsMode::VerifyFull {
            webpki
        } else {
            Arc::new(ChainOnly(webpki))
        }
    } else {
        Arc::new(AnyCertificate(provider.clone()))
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::definite(format!("TLS set-up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(ep.engine, TlsParam::Cert, cert)?;
            let key = read_key(ep.engine, key)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                Error::definite(format!(
                    "the client certificate {} and key do not go together: {e}",
                    cert.display()
                ))
                .with_hint("sslkey must be the private key of the certificate in sslcert")
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(Arc::new(config)))
}

fn root_store(ep: &Endpoint) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match &ep.tls.root_cert {
        Some(RootCerts::File(path)) => {
            for c in read_certs(ep.engine, TlsParam::RootCert, path)? {
                roots
                    .add(c)
                    .map_err(|e| Tls::file_error(ep.engine, TlsParam::RootCert, path, e))?;
            }
        }
        Some(RootCerts::System) => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        None => {
            let mode = TlsParam::Mode.name(ep.engine);
            let ca = TlsParam::RootCert.name(ep.engine);
            return Err(Error::definite(format!(
                "{mode}={} checks the server's certificate, but the URL of {ep} names no CA \
                 to check it against",
                ep.tls.mode.word(ep.engine)
            ))
            .with_hint(format!(
                "add {ca}=<the CA's PEM file>{}, or use {mode}={} to encrypt without checking",
                if ep.engine == Engine::Postgres {
                    " (or sslrootcert=system for a certificate from a public CA)"
                } else {
                    ""
                },
                TlsMode::Require.word(ep.engine)
            )));
        }
    }
    Ok(roots)
}

/// Reads the PEM certificates of a file, naming the parameter and path if it fails.
pub fn read_certs(
    engine: Engine,
    param: TlsParam,
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).map_err(|e| Tls::file_error(engine, param, path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Tls::file_error(engine, param, path, e))?;
    if certs.is_empty() {
        return Err(Tls::file_error(
            engine,
            param,
            path,
            "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// Reads a PEM private key; the error names the path, never the contents.
pub fn read_key(engine: Engine, path: &std::path::Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = std::fs::read(path).map_err(|e| Tls::file_error(engine, TlsParam::Key, path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        Tls::file_error(
            engine,
            TlsParam::Key,
            path,
            "it holds no PEM private key this client can read",
        )
    })
}

/// `verify-ca`: the chain must lead to a trusted CA; the name is not checked. The
/// WebPKI verifier checks the chain before the name, so a name mismatch is its only
/// complaint about a certificate whose chain is good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` / `require`: any certificate, as libpq; the handshake's signature must
/// still be made by the certificate's key (so the session keys are the server's).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Which TLS failure a driver error holds, if any: a rustls error anywhere in its
/// chain of sources (directly or inside an `io::Error`).
pub fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<(ConnectFailure, String)> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let rustls_err = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(r) = rustls_err {
            let failure = match r {
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ) => ConnectFailure::CertName,
                rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer | CertificateError::BadSignature,
                ) => ConnectFailure::CertUntrusted,
                _ => ConnectFailure::TlsHandshake,
            };
            return Some((failure, r.to_string()));
        }
        cur = err.source();
    }
    None
}

/// A `tokio-postgres` TLS connector over rustls.
#[derive(Clone)]
pub struct MakeRustls(Arc<ClientConfig>);

impl MakeRustls {
    /// A connector with `config` (from [`client_config`]).
    pub fn new(config: Arc<ClientConfig>) -> MakeRustls {
        MakeRustls(config)
    }
}

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(
        &mut self,
        domain: &str,
    ) -> std::result::Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: self.0.clone(),
            name: ServerName::try_from(domain.to_string())?,
        })
    }
}

/// One TLS handshake to a named server.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S> tokio_postgres::tls::TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let s = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(Box::new(s)))
        })
    }
}

/// An encrypted stream to a server.
pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        // SCRAM without channel binding: the session is still encrypted and the
        // server authenticated by its certificate (per sslmode)
        tokio_postgres::tls::ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// The replication connection's socket: plain or encrypted.
pub enum MaybeTls {
    /// Unencrypted (`disable`, or `prefer` against a server without TLS).
    Plain(TcpStream),
    /// Encrypted.
    Tls(RustlsStream<TcpStream>),
}

impl MaybeTls {
    /// Whether the stream is encrypted.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// PostgreSQL's SSLRequest code (1234 << 16 | 5679).
const SSL_REQUEST: i32 = 80_877_103;

/// Starts TLS on a fresh connection as `ep`'s sslmode says: sends the SSLRequest,
/// and on the server's 'S' performs the handshake; on 'N' goes on in plain text under
/// `prefer` and fails under the stricter modes.
pub async fn negotiate(mut stream: TcpStream, ep: &Endpoint) -> Result<MaybeTls> {
    let Some(config) = client_config(ep)? else {
        return Ok(MaybeTls::Plain(stream));
    };
    let mut request = [0u8; 8];
    request[..4].copy_from_slice(&8i32.to_be_bytes());
    request[4..].copy_from_slice(&SSL_REQUEST.to_be_bytes());
    let answer = async {
        stream.write_all(&request).await?;
        stream.read_u8().await
    };
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), answer)
        .await
        .map_err(|_| ConnectFailure::Timeout.error(ep, "no answer to the TLS request"))?
        .map_err(|e| ferry_core::connect::io_failure(&e).error(ep, &e.to_string()))?;
    match answer {
        b'S' => {}
        b'N' if ep.tls.mode == TlsMode::Prefer => return Ok(MaybeTls::Plain(stream)),
        b'N' => return Err(ConnectFailure::TlsUnsupported.error(ep, "server does not support TLS")),
        other => {
            return Err(ConnectFailure::WrongProtocol.error(
                ep,
                &format!("unexpected answer {other:#04x} to the TLS request"),
            ))
        }
    }
    let name = ServerName::try_from(ep.host.clone()).map_err(|e| {
        Error::definite(format!(
            "{} cannot be used as a TLS server name: {e}",
            ep.host
        ))
    })?;
    let tls = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(config).connect(name, stream),
    )
    .await
    .map_err(|_| ConnectFailure::Timeout.error(ep, "no TLS handshake within 10 s"))?
    .map_err(|e| match tls_failure(&e) {
        Some((f, detail)) => f.error(ep, &detail),
        None => ferry_core::connect::io_failure(&e).error(ep, &e.to_string()),
    })?;
    Ok(MaybeTls::Tls(RustlsStream(Box::new(tls))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that checks the first 8 bytes are an SSLRequest and answers `answer`.
    async fn answering(answer: u8) -> (u16, tokio::task::JoinHandle<[u8; 8]>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = [0u8; 8];
            s.read_exact(&mut req).await.unwrap();
            s.write_all(&[answer]).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            req
        });
        (port, task)
    }

    async fn negotiate_with(mode: &str, answer: u8) -> (Result<MaybeTls>, [u8; 8]) {
        let (port, peer) = answering(answer).await;
        let ep = Endpoint::parse(
            &format!("postgres://u@127.0.0.1:{port}/d?sslmode={mode}"),
            "FERRY_TEST_UNSET_PASSWORD",
        )
        .unwrap();
        let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let r = negotiate(s, &ep).await;
        (r, peer.await.unwrap())
    }

    #[tokio::test]
    async fn the_replication_connection_asks_for_tls_as_libpq_does() {
        let (r, req) = negotiate_with("prefer", b'N').await;
        assert_eq!(
            req,
            [0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f],
            "SSLRequest 80877103"
        );
        assert!(!r.unwrap().is_encrypted(), "prefer goes on in plain text");

        let (r, _) = negotiate_with("require", b'N').await;
        let e = r.err().expect("require refuses a server without TLS");
        assert!(
            e.message.contains("the server does not accept TLS"),
            "{}",
            e.message
        );
        assert!(!e.is_transient());

        let (r, _) = negotiate_with("prefer", b'X').await;
        let e = r.err().expect("not PostgreSQL");
        assert!(
            e.message.contains("not a database server of this kind"),
            "{e}"
        );
    }
}
