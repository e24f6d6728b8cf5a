//! HTTPS inspection: the organisation CA, certificates made on demand for each server name,
//! and serving the decrypted requests through the same handler as plain HTTP.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{Proxy, Who};

/// Certificates remembered before the cache is emptied.
const CACHE_MAX: usize = 10_000;
/// Days a made-up server certificate is valid (it is made again when the cache is emptied).
const LEAF_DAYS: i64 = 30;

/// Why the CA could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The key or certificate is not usable.
    #[error("{0}")]
    Invalid(String),
}

/// The organisation CA and the certificates it signs.
pub struct Inspector {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    leaf_key: KeyPair,
    signing_key: Arc<dyn rustls::sign::SigningKey>,
    cache: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Lookout e-safety filter CA");
    dn.push(DnType::OrganizationName, "Lookout");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365 * 10);
    params
}

/// The ring provider, explicitly: no process-wide default is needed or set.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn invalid(e: impl std::fmt::Display) -> CaError {
    CaError::Invalid(e.to_string())
}

impl Inspector {
    /// Loads the CA from `dir/ca.pem` and `dir/ca.key`, or makes a new one there.
    pub fn load_or_create(dir: &Path) -> Result<Inspector, CaError> {
        let io_err = |path: &Path| {
            let path = path.display().to_string();
            move |source| CaError::Io { path, source }
        };
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let (ca_key, ca_pem) = if cert_path.exists() && key_path.exists() {
            let key = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
            let pem = std::fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
            (KeyPair::from_pem(&key).map_err(invalid)?, pem)
        } else {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            let key = KeyPair::generate().map_err(invalid)?;
            let cert = ca_params().self_signed(&key).map_err(invalid)?;
            write_private(&key_path, &key.serialize_pem()).map_err(io_err(&key_path))?;
            std::fs::write(&cert_path, cert.pem()).map_err(io_err(&cert_path))?;
            (key, cert.pem())
        };
        Inspector::new(ca_key, ca_pem)
    }

    fn new(ca_key: KeyPair, ca_pem: String) -> Result<Inspector, CaError> {
        use rustls::pki_types::pem::PemObject;
        let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| invalid(format!("the CA certificate: {e}")))?;
        // The issuer for new certificates: same name and key as the certificate on disk, so
        // what it signs chains to the certificate the devices trust.
        let ca = ca_params().self_signed(&ca_key).map_err(invalid)?;
        let leaf_key = KeyPair::generate().map_err(invalid)?;
        let provider = provider();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let signing_key = provider
            .key_provider
            .load_private_key(der)
            .map_err(invalid)?;
        // A template: each accepted connection gets a copy presenting its name's certificate.
        let mut template = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(invalid)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(NoCert));
        template.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Inspector {
            ca_pem,
            ca_der,
            ca,
            ca_key,
            leaf_key,
            signing_key,
            cache: Mutex::new(HashMap::new()),
            server_config: Arc::new(template),
        })
    }

    /// The CA certificate (PEM), for devices to install.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A certificate for `name`, signed by the CA (cached).
    pub fn certificate_for(&self, name: &str) -> Result<Arc<CertifiedKey>, CaError> {
        let name = name.to_ascii_lowercase();
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = cache.get(&name) {
                return Ok(c.clone());
            }
        }
        let mut params = CertificateParams::new(vec![name.clone()]).map_err(invalid)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, name.as_str());
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(LEAF_DAYS);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = params
            .signed_by(&self.leaf_key, &self.ca, &self.ca_key)
            .map_err(invalid)?;
        let key = Arc::new(CertifiedKey::new(
            vec![leaf.der().clone(), self.ca_der.clone()],
            self.signing_key.clone(),
        ));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(name, key.clone());
        Ok(key)
    }

    /// A TLS server configuration presenting a certificate for `name`.
    fn server_config_for(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<Arc<rustls::ServerConfig>, CaError> {
        let key = self.certificate_for(name)?;
        let mut config = (*self.server_config).clone();
        config.cert_resolver = Arc::new(Fixed(key));
        Ok(Arc::new(config))
    }
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options.open(path)?.write_all(text.as_bytes())
}

#[derive(Debug)]
struct NoCert;

impl ResolvesServerCert for NoCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A stream whose first bytes were already read (the ClientHello): they are read again first.
pub(crate) struct Replay<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Replay<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Replay<S> {
        Replay {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Terminates TLS for `name` with a certificate from the CA and serves the requests inside
/// through the proxy's handler, as `https://name:port/...`.
pub(crate) async fn serve<S>(proxy: Arc<Proxy>, who: Who, stream: S, name: String, port: u16)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(inspector) = proxy.inspector.clone() else {
        return;
    };
    let Ok(config) = inspector.server_config_for(&name) else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let Ok(Ok(tls)) =
        tokio::time::timeout(proxy.settings.header_timeout, acceptor.accept(stream)).await
    else {
        return; // the device does not trust the CA, or went away
    };
    let authority = if port == 443 {
        name.clone()
    } else {
        format!("{name}:{port}")
    };
    let stopping = proxy.stopping.clone();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(proxy.settings.header_timeout)
        .max_buf_size(proxy.settings.max_header_bytes.max(8192));
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let proxy = proxy.clone();
            let who = who.clone();
            let path = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let uri = format!("https://{authority}{path}").parse();
            async move {
                match uri {
                    Ok(uri) => {
                        *req.uri_mut() = uri;
                        Ok::<_, std::convert::Infallible>(
                            crate::handler::forward(proxy, who, req).await,
                        )
                    }
                    Err(_) => Ok(crate::handler::page(
                        hyper::StatusCode::BAD_REQUEST,
                        "Bad request",
                        &["The request's path is not valid."],
                    )),
                }
            }
        });
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = stopping.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_then_reloaded_and_signs_for_any_name() {
        let dir = tempfile::tempdir().unwrap();
        let first = Inspector::load_or_create(dir.path()).unwrap();
        let again = Inspector::load_or_create(dir.path()).unwrap();
        assert_eq!(first.ca_pem(), again.ca_pem(), "the CA on disk is kept");
        assert!(first.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let key = std::fs::read_to_string(dir.path().join("ca.key")).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the CA key is private");
        }
        for name in ["www.example.com", "10.0.0.1"] {
            let a = again.certificate_for(name).unwrap();
            assert_eq!(a.cert.len(), 2);
            let b = again.certificate_for(name).unwrap();
            assert!(Arc::ptr_eq(&a, &b), "cached");
        }
    }
}
