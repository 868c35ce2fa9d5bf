//! TLS of every outbound client: which certificates a client trusts, which certificate it
//! presents, and which scheme node URLs use.
//!
//! Every client of [`crate::outbound`] is built with a rustls `ClientConfig` made here and handed
//! to reqwest whole (`tls_backend_preconfigured`), rather than with reqwest's own TLS options,
//! for two reasons:
//!
//! - **The presented certificate is reloaded.** A node's client certificate (mTLS to its peers)
//!   is the same file as its server certificate; [`ClientTls`] holds the resolver the server side
//!   reloads on SIGHUP or a file change (`src/tls/`), so a rotation reaches both directions. A
//!   reqwest `Identity` would be fixed when the client is built.
//! - **The roots are loaded once per process.** The system roots (the OS store, through
//!   `rustls-native-certs`, which honours `SSL_CERT_FILE` and `SSL_CERT_DIR`) are read on first use
//!   and shared; reqwest's platform verifier reads the whole store again for every client built.
//!
//! Two trust policies ([`Trust`]): node to node trusts the cluster CA alone when a CA file is
//! given (a certificate from a public CA for some other host name is no cluster member), and the
//! system roots otherwise; every other client (executors, an agent's calls, `http` jobs, the CLI)
//! trusts the system roots plus the CA file.
//!
//! The scheme of node URLs is one cluster-wide setting: with `[tls]` configured every node serves
//! TLS on every listener, so [`ClientTls::node_url`] is the one place a node URL is made from an
//! advertised `host:port`.
//!
//! Every TLS connection, client and server, uses one crypto provider: aws-lc-rs ([`provider`];
//! docs/decisions.md says why).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Largest CA file read: a bundle of a few hundred certificates is well under this.
pub const CA_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// The one crypto provider of every TLS connection of the process (aws-lc-rs, rustls's default).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())).clone()
}

/// The system's trusted roots, read once per process. Entries the store holds but rustls cannot
/// use are skipped; a machine without a CA store gets an empty set (then only the CA file is
/// trusted).
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            if !loaded.errors.is_empty() {
                tracing::debug!(errors = loaded.errors.len(), "some system CA certificates could not be read");
            }
            let mut store = RootCertStore::empty();
            let (_added, skipped) = store.add_parsable_certificates(loaded.certs);
            if skipped > 0 {
                tracing::debug!(skipped, "some system CA certificates are not usable as trust anchors");
            }
            Arc::new(store)
        })
        .clone()
}

/// A CA file that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot read CA file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("CA file {path} is larger than {CA_FILE_BYTES_MAX} bytes")]
    TooLarge { path: PathBuf },
    #[error("CA file {path} is not valid PEM: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("CA file {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    Empty { path: PathBuf },
    #[error("CA file {path}: certificate {index} cannot be a trust anchor: {reason}")]
    Anchor { path: PathBuf, index: usize, reason: String },
}

/// Reads the PEM certificates of a CA file, each checked to be usable as a trust anchor.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let read = |source| CaError::Read { path: path.into(), source };
    let len = std::fs::metadata(path).map_err(read)?.len();
    if len > CA_FILE_BYTES_MAX {
        return Err(CaError::TooLarge { path: path.into() });
    }
    let bytes = std::fs::read(path).map_err(read)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| CaError::Pem { path: path.into(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(CaError::Empty { path: path.into() });
    }
    for (index, cert) in certs.iter().enumerate() {
        webpki_anchor(cert).map_err(|reason| CaError::Anchor { path: path.into(), index, reason })?;
    }
    Ok(certs)
}

fn webpki_anchor(cert: &CertificateDer<'_>) -> Result<(), String> {
    RootCertStore::empty().add(cert.clone()).map_err(|e| e.to_string())
}

/// Whom a client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Node to node: the CA file alone when one is given, else the system roots.
    Cluster,
    /// Everything else: the system roots plus the CA file.
    SystemAndCa,
}

/// The TLS side of a process's outbound clients. The default trusts the system roots, presents
/// no certificate and makes `http://` node URLs (a cluster without `[tls]`).
#[derive(Clone, Default)]
pub struct ClientTls {
    /// The CA file's certificates (the cluster CA), if one was given.
    ca: Option<Arc<RootCertStore>>,
    /// System roots plus the CA file, built once.
    merged: Option<Arc<RootCertStore>>,
    /// This process's certificate, presented when a server asks for one (mTLS between nodes).
    /// The resolver is the server side's, so a reload reaches both.
    identity: Option<Arc<dyn ResolvesClientCert>>,
    /// Node URLs are `https://` (every node of the cluster has `[tls]`).
    https_nodes: bool,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_roots", &self.ca.as_ref().map(|c| c.len()))
            .field("identity", &self.identity.is_some())
            .field("https_nodes", &self.https_nodes)
            .finish()
    }
}

impl ClientTls {
    /// Trusts `ca` (besides or instead of the system roots, see [`Trust`]), presents `identity`
    /// when asked, and makes `https://` node URLs when `https_nodes`.
    pub fn new(
        ca: Vec<CertificateDer<'static>>,
        identity: Option<Arc<dyn ResolvesClientCert>>,
        https_nodes: bool,
    ) -> ClientTls {
        let (ca, merged) = if ca.is_empty() {
            (None, None)
        } else {
            let mut only = RootCertStore::empty();
            only.add_parsable_certificates(ca.iter().cloned());
            let mut merged = (*system_roots()).clone();
            merged.add_parsable_certificates(ca);
            (Some(Arc::new(only)), Some(Arc::new(merged)))
        };
        ClientTls { ca, merged, identity, https_nodes }
    }

    /// A client that trusts the system roots plus the CA file at `path` (the CLI's `--ca-file`).
    pub fn with_ca_file(path: &Path) -> Result<ClientTls, CaError> {
        Ok(ClientTls::new(read_ca_file(path)?, None, false))
    }

    /// Whether node URLs are `https://`.
    pub fn https_nodes(&self) -> bool {
        self.https_nodes
    }

    /// `http` or `https`: the scheme of every node URL in this cluster.
    pub fn node_scheme(&self) -> &'static str {
        if self.https_nodes {
            "https"
        } else {
            "http"
        }
    }

    /// The base URL of a node address (`host:port`, as advertised in the membership).
    pub fn node_url(&self, addr: &str) -> String {
        format!("{}://{addr}", self.node_scheme())
    }

    /// Whether a CA file was given.
    pub fn has_ca(&self) -> bool {
        self.ca.is_some()
    }

    /// The rustls configuration of one client: roots by `trust`, this process's certificate when
    /// `present_identity` (and one is configured), HTTP/1.1 by ALPN (no client here speaks h2).
    pub fn client_config(&self, trust: Trust, present_identity: bool) -> Result<ClientConfig, rustls::Error> {
        let roots = match (trust, &self.ca, &self.merged) {
            (Trust::Cluster, Some(ca), _) => ca.clone(),
            (Trust::SystemAndCa, _, Some(merged)) => merged.clone(),
            _ => system_roots(),
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut config = match (&self.identity, present_identity) {
            (Some(identity), true) => builder.with_client_cert_resolver(identity.clone()),
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_follow_the_cluster_setting() {
        let plain = ClientTls::default();
        assert_eq!(plain.node_url("10.0.0.1:7340"), "http://10.0.0.1:7340");
        let tls = ClientTls::new(Vec::new(), None, true);
        assert_eq!(tls.node_url("node1.lan:7341"), "https://node1.lan:7341");
        assert!(!tls.has_ca());
    }

    #[test]
    fn ca_files_are_checked_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = read_ca_file(&missing).unwrap_err().to_string();
        assert!(err.contains("nope.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = read_ca_file(&empty).unwrap_err().to_string();
        assert!(err.contains("empty.pem") && err.contains("no PEM certificate"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let err = read_ca_file(&garbage).unwrap_err().to_string();
        assert!(err.contains("garbage.pem"), "{err}");
    }

    #[test]
    fn configs_build_with_and_without_a_ca() {
        let plain = ClientTls::default();
        let c = plain.client_config(Trust::Cluster, true).unwrap();
        assert_eq!(c.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(!c.client_auth_cert_resolver.has_certs(), "no identity configured: none presented");
    }
}
