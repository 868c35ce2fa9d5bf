//! TLS on every listener of a node or an agent, with rustls: the `[tls]` settings, the
//! certificate that is reloaded without a restart, and the acceptor each listener wraps its
//! connections in.
//!
//! One certificate and key per process serve all of its listeners (API, Raft, the embedded
//! agent's), and the same pair is the client certificate of its node-to-node calls: `cronraft
//! certs init` issues each host one certificate good for both uses, so a three-host cluster
//! needs three files and a CA, not three per host. The certificate is held by a [`CertStore`]
//! that every handshake reads, so a new file is served to new connections as soon as it is
//! loaded (SIGHUP, or a change of the files seen by a poll); connections already open keep the
//! certificate they were made with.
//!
//! Client certificates are checked against the CA file (`WebPkiClientVerifier`): always on the
//! Raft listener with `peer_client_auth = true`, as `api_client_auth` says on the API listener,
//! never on an agent's listener (the executor protocol's own authentication is another part of
//! issue 17). The CA file is read at start; changing it takes a restart.
//!
//! - `settings`: the `[tls]` table, its `CRONRAFT_TLS_*` variables and their checks.
//! - `certs`: reading PEM files, the reloading [`CertStore`] and its reload task.
//! - `init`: `cronraft certs init`, a small CA and a certificate per host (rcgen).

mod certs;
pub mod init;
mod settings;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cronraft_raft::outbound::tls::{provider, read_ca_file, CaError};
use cronraft_raft::outbound::ClientTls;
use rustls::client::ResolvesClientCert;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use certs::{load_certified_key, CertStore, Reload};
pub use settings::{ClientAuth, TlsSettings};

/// Why TLS could not be set up; every message names the file or the setting to fix, and none
/// carries key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{what} {path} is larger than {bytes_max} bytes")]
    TooLarge { what: &'static str, path: PathBuf, bytes_max: u64 },
    #[error("{what} {path} is not valid PEM: {reason}")]
    Pem { what: &'static str, path: PathBuf, reason: String },
    #[error("certificate file {path} holds no certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("key file {path} holds no private key (PKCS#8, RSA or SEC1 PEM)")]
    NoKey { path: PathBuf },
    #[error("key file {path} cannot be used: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("key file {key} does not belong to the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error(transparent)]
    Ca(#[from] CaError),
    /// A combination of settings that cannot work.
    #[error("{0}")]
    Settings(String),
    /// rustls refused a configuration (a CA that cannot verify client certificates, …).
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// Which listener an acceptor is for: each has its own client-certificate rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Api,
    Raft,
    Agent,
}

/// A process's TLS, loaded from its [`TlsSettings`]: the certificate (if it serves TLS) and the
/// CA (if one is given). Cheap to clone.
#[derive(Clone, Default)]
pub struct Tls {
    settings: TlsSettings,
    /// This process's certificate and key, reloaded in place; `None`: listeners are plain HTTP.
    store: Option<Arc<CertStore>>,
    /// The CA file's certificates: trusted by clients, and the roots of client-certificate checks.
    ca: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("settings", &self.settings).field("serves_tls", &self.store.is_some()).finish()
    }
}

impl Tls {
    /// Checks `settings` and reads every file they name.
    pub fn load(settings: &TlsSettings) -> Result<Tls, TlsError> {
        settings.check()?;
        let store = match (&settings.cert_file, &settings.key_file) {
            (Some(cert), Some(key)) => Some(CertStore::load(cert.clone(), key.clone())?),
            _ => None,
        };
        let ca = match &settings.ca_file {
            Some(path) => read_ca_file(path)?,
            None => Vec::new(),
        };
        let tls = Tls { settings: settings.clone(), store, ca };
        // Build each acceptor once, so a CA that cannot verify client certificates fails now.
        for listener in [Listener::Api, Listener::Raft, Listener::Agent] {
            tls.acceptor(listener)?;
        }
        Ok(tls)
    }

    /// Whether the listeners serve TLS (a certificate is configured).
    pub fn serves_tls(&self) -> bool {
        self.store.is_some()
    }

    /// The certificate store, when the listeners serve TLS.
    pub fn store(&self) -> Option<&Arc<CertStore>> {
        self.store.as_ref()
    }

    /// The TLS of this process's outbound clients: the CA, this process's certificate as client
    /// certificate, and `https://` node URLs when it serves TLS.
    pub fn client(&self) -> ClientTls {
        let identity = self.store.clone().map(|s| s as Arc<dyn ResolvesClientCert>);
        ClientTls::new(self.ca.clone(), identity, self.serves_tls())
    }

    /// The acceptor of `listener`'s connections, or `None` when this process serves plain HTTP.
    pub fn acceptor(&self, listener: Listener) -> Result<Option<TlsAcceptor>, TlsError> {
        let Some(store) = &self.store else { return Ok(None) };
        let auth = match listener {
            Listener::Raft if self.settings.peer_client_auth => ClientAuth::Required,
            Listener::Raft | Listener::Agent => ClientAuth::Off,
            Listener::Api => self.settings.api_client_auth,
        };
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let builder = match auth {
            ClientAuth::Off => builder.with_no_client_auth(),
            ClientAuth::Optional | ClientAuth::Required => {
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(self.ca.iter().cloned());
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
                let verifier = if auth == ClientAuth::Optional { verifier.allow_unauthenticated() } else { verifier };
                let verifier = verifier.build().map_err(|e| TlsError::Setup(format!("client certificates: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(store.clone());
        // The listeners speak HTTP/1.1 only; a client that offers only h2 fails the handshake.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(TlsAcceptor::from(Arc::new(config))))
    }

    /// Reloads the certificate on SIGHUP and when its files change (looked at every
    /// `reload_check_ms`), until `stop`; `None` when there is no certificate.
    pub fn spawn_reloader(&self, stop: watch::Receiver<bool>) -> Option<JoinHandle<()>> {
        let store = self.store.clone()?;
        let every = Duration::from_millis(self.settings.reload_check_ms);
        Some(tokio::spawn(certs::reload_loop(store, every, stop)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A CA and one host certificate in `dir`: (ca, cert, key).
    fn files(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
        let request = init::InitRequest { hosts: vec!["n1+127.0.0.1".into()], out: dir.into(), force: false, days: 30 };
        init::run(&request).unwrap();
        (dir.join("ca.pem"), dir.join("n1.pem"), dir.join("n1-key.pem"))
    }

    #[test]
    fn config_errors_name_the_setting_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = files(dir.path());
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello\n").unwrap();
        let set = |c: &mut Config, cert: &PathBuf, key: &PathBuf| {
            (c.tls.cert_file, c.tls.key_file) = (Some(cert.clone()), Some(key.clone()));
        };
        type Mutation<'a> = Box<dyn Fn(&mut Config) + 'a>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|c| c.tls.cert_file = Some(cert.clone())), "tls.key_file is not (--tls-key-file)"),
            (Box::new(|c| c.tls.key_file = Some(key.clone())), "tls.cert_file is not (--tls-cert-file)"),
            (Box::new(|c| set(c, &missing, &key)), "missing.pem"),
            (Box::new(|c| set(c, &garbage, &key)), "garbage.pem holds no certificate"),
            (Box::new(|c| set(c, &cert, &garbage)), "garbage.pem holds no private key"),
            (Box::new(|c| set(c, &cert, &ca)), "ca.pem holds no private key"),
            (Box::new(|c| c.tls.ca_file = Some(garbage.clone())), "garbage.pem holds no PEM certificate"),
            (
                Box::new(|c| {
                    set(c, &cert, &key);
                    c.tls.peer_client_auth = true;
                }),
                "peer_client_auth needs",
            ),
            (Box::new(|c| c.tls.api_client_auth = ClientAuth::Required), "api_client_auth needs"),
        ];
        for (mutate, expected) in cases {
            let mut c = Config::default();
            mutate(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.starts_with("tls: ") && err.contains(expected), "{err} should mention {expected}");
        }
        // The whole set works, and turns https on for node URLs.
        let mut c = Config::default();
        set(&mut c, &cert, &key);
        (c.tls.ca_file, c.tls.peer_client_auth) = (Some(ca.clone()), true);
        c.validate().unwrap();
        let tls = Tls::load(&c.tls).unwrap();
        assert!(tls.serves_tls() && tls.client().https_nodes());
        assert!(tls.acceptor(Listener::Raft).unwrap().is_some());
        // A CA alone is allowed: plain listeners, and clients that trust it (https executors).
        let only_ca = Tls::load(&TlsSettings { ca_file: Some(ca), ..TlsSettings::default() }).unwrap();
        assert!(!only_ca.serves_tls() && only_ca.acceptor(Listener::Api).unwrap().is_none());
        assert!(!only_ca.client().https_nodes() && only_ca.client().has_ca());
    }

    #[test]
    fn tls_comes_from_the_table_and_from_environment_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[tls]\ncert_file = \"/a.pem\"\napi_client_auth = \"optional\"\n").unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.tls.cert_file.as_deref(), Some(std::path::Path::new("/a.pem")));
        assert_eq!(c.tls.api_client_auth, ClientAuth::Optional);
        std::fs::write(&path, "[tls]\ncert = \"/a.pem\"\n").unwrap();
        assert!(Config::from_file(&path).is_err(), "unknown keys in [tls] are refused");

        let mut c = Config::default();
        let vars = [
            ("CRONRAFT_TLS_KEY_FILE", "/k.pem"),
            ("CRONRAFT_TLS_PEER_CLIENT_AUTH", "yes"),
            ("CRONRAFT_TLS_API_CLIENT_AUTH", "required"),
        ];
        c.apply_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        assert_eq!(c.tls.key_file.as_deref(), Some(std::path::Path::new("/k.pem")));
        assert!(c.tls.peer_client_auth);
        assert_eq!(c.tls.api_client_auth, ClientAuth::Required);
        let bad = [("CRONRAFT_TLS_API_CLIENT_AUTH".to_string(), "sometimes".to_string())];
        let err = c.apply_env(bad.into_iter()).unwrap_err().to_string();
        assert!(err.contains("CRONRAFT_TLS_API_CLIENT_AUTH") && err.contains("optional"), "{err}");
    }
}
