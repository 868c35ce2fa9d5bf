//! The `[tls]` table of the node configuration, its `CRONRAFT_TLS_*` variables, and the checks
//! that need no file (the files themselves are read by [`super::Tls::load`]).
//!
//! It lives here rather than in `config.rs` so that the configuration only carries the table and
//! forwards the variables: everything about TLS settings is in one module.

use std::path::PathBuf;

use serde::Deserialize;

use super::TlsError;

/// Whether a listener asks clients for a certificate, and whether it requires one.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    Off,
    /// Asked for and checked against the CA when sent; clients without one are served.
    Optional,
    /// A client without a certificate from the CA fails the handshake.
    Required,
}

impl ClientAuth {
    /// The name used in the config file and `CRONRAFT_TLS_API_CLIENT_AUTH`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::Off => "off",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "required",
        }
    }
}

impl std::str::FromStr for ClientAuth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(ClientAuth::Off),
            "optional" => Ok(ClientAuth::Optional),
            "required" => Ok(ClientAuth::Required),
            _ => Err("expected off, optional or required".into()),
        }
    }
}

/// `[tls]`: TLS on every listener of the node, and the trust of its clients. The cluster is
/// either TLS everywhere or nowhere: with `cert_file` set, this node's listeners serve TLS and it
/// calls the other nodes at `https://` URLs, so every node needs it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain (leaf first) served on the API, Raft and embedded agent listeners,
    /// and presented as client certificate to the other nodes (`--tls-cert-file`).
    pub cert_file: Option<PathBuf>,
    /// The certificate's PEM private key: PKCS#8, RSA or SEC1 (`--tls-key-file`).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificate(s): trusted by every client besides the system roots (alone for
    /// node-to-node calls), and the roots client certificates are checked against
    /// (`--tls-ca-file`).
    pub ca_file: Option<PathBuf>,
    /// The Raft listener requires a client certificate from the CA (mTLS between nodes).
    pub peer_client_auth: bool,
    /// The API listener's client certificates (`off`, `optional`, `required`).
    pub api_client_auth: ClientAuth,
    /// How often the certificate and key files are looked at for a change (SIGHUP reloads at
    /// once).
    pub reload_check_ms: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            cert_file: None,
            key_file: None,
            ca_file: None,
            peer_client_auth: false,
            api_client_auth: ClientAuth::Off,
            reload_check_ms: 5_000,
        }
    }
}

impl TlsSettings {
    /// Applies one `CRONRAFT_TLS_*` variable; the error is the reason the value is refused.
    pub fn apply_env(&mut self, name: &str, value: &str) -> Result<(), String> {
        let path = || (!value.is_empty()).then(|| PathBuf::from(value));
        match name {
            "CRONRAFT_TLS_CERT_FILE" => self.cert_file = path(),
            "CRONRAFT_TLS_KEY_FILE" => self.key_file = path(),
            "CRONRAFT_TLS_CA_FILE" => self.ca_file = path(),
            "CRONRAFT_TLS_PEER_CLIENT_AUTH" => {
                self.peer_client_auth = crate::config::parse_bool(value).ok_or("expected true or false")?
            }
            "CRONRAFT_TLS_API_CLIENT_AUTH" => self.api_client_auth = value.parse()?,
            "CRONRAFT_TLS_RELOAD_CHECK_MS" => self.reload_check_ms = value.parse().map_err(|_| "expected ms")?,
            _ => {}
        }
        Ok(())
    }

    /// Explains the first combination that cannot work (files are read later).
    pub fn check(&self) -> Result<(), TlsError> {
        let bad = |m: &str| Err(TlsError::Settings(m.to_string()));
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => return bad("tls.cert_file is set but tls.key_file is not (--tls-key-file)"),
            (None, Some(_)) => return bad("tls.key_file is set but tls.cert_file is not (--tls-cert-file)"),
            _ => {}
        }
        let serves = self.cert_file.is_some();
        if self.peer_client_auth && !(serves && self.ca_file.is_some()) {
            return bad("tls.peer_client_auth needs tls.cert_file, tls.key_file and tls.ca_file (the CA the peers' \
                 certificates come from)");
        }
        if self.api_client_auth != ClientAuth::Off && !(serves && self.ca_file.is_some()) {
            return bad("tls.api_client_auth needs tls.cert_file, tls.key_file and tls.ca_file");
        }
        if self.reload_check_ms < 100 {
            return bad("tls.reload_check_ms must be at least 100");
        }
        Ok(())
    }
}
