//! A process's certificate and key: read from PEM files, held by a [`CertStore`] that every TLS
//! handshake (server and client side) reads, and reloaded without a restart.
//!
//! A reload reads both files, parses them, checks that the key belongs to the certificate, and
//! only then swaps the new pair in; a reload that fails for any reason (a file half written, a
//! wrong key, a missing file) keeps the pair in use and logs one warning naming the file and the
//! reason, never any key material. Reloads happen on SIGHUP, and when a poll sees the files
//! change (modification time, size or inode of either file): a change is acted on once it has
//! held still for one poll, so an operator copying the certificate and then the key is not
//! caught in between.

use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use cronraft_raft::outbound::tls::provider;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

use super::TlsError;

/// Largest certificate or key file read: a chain of a few certificates is a few KiB.
pub const PEM_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// Reads a file of at most [`PEM_FILE_BYTES_MAX`] bytes; `what` names it in errors.
fn read_capped(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let read = |source| TlsError::Read { what, path: path.into(), source };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(PEM_FILE_BYTES_MAX + 1).read_to_end(&mut bytes).map_err(read)?;
    if bytes.len() as u64 > PEM_FILE_BYTES_MAX {
        return Err(TlsError::TooLarge { what, path: path.into(), bytes_max: PEM_FILE_BYTES_MAX });
    }
    Ok(bytes)
}

/// Reads a PEM certificate chain (leaf first) and its private key, and checks that they belong
/// together.
pub fn load_certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read_capped("certificate file", cert_file)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem { what: "certificate file", path: cert_file.into(), reason: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_file.into() });
    }
    let key_pem = read_capped("key file", key_file)?;
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(key) => key,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => return Err(TlsError::NoKey { path: key_file.into() }),
        // The parser's message names a section or a base64 error, never the key's bytes.
        Err(e) => return Err(TlsError::Pem { what: "key file", path: key_file.into(), reason: e.to_string() }),
    };
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch { cert: cert_file.into(), key: key_file.into() },
        other => TlsError::Key { path: key_file.into(), reason: other.to_string() },
    })
}

/// What identifies the two files' current contents without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    files: [Option<(SystemTime, u64, u64)>; 2],
}

impl Stamp {
    fn of(cert_file: &Path, key_file: &Path) -> Stamp {
        let one = |p: &Path| std::fs::metadata(p).ok().map(|m: Metadata| (m.modified().ok(), m.len(), m.ino()));
        let pack = |x: Option<(Option<SystemTime>, u64, u64)>| {
            x.map(|(t, len, ino)| (t.unwrap_or(SystemTime::UNIX_EPOCH), len, ino))
        };
        Stamp { files: [pack(one(cert_file)), pack(one(key_file))] }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The files have not changed since they were loaded (or have not held still yet).
    Unchanged,
    /// A new certificate is served to new connections.
    Reloaded,
    /// The files could not be used; the previous certificate stays. The reason names the file.
    Failed(String),
}

/// Where the polls stand.
#[derive(Debug)]
struct Watch {
    /// The files as they were when last loaded or last tried.
    settled: Stamp,
    /// A change seen by the last poll, acted on if the next poll sees the same.
    pending: Option<Stamp>,
}

/// The current certificate and key of a process, read by every handshake: as the server's
/// certificate on its listeners, and as the client certificate of its node-to-node calls.
#[derive(Debug)]
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    /// Swapped whole on a successful reload; a handshake clones the `Arc`.
    current: RwLock<Arc<CertifiedKey>>,
    watch: Mutex<Watch>,
}

impl CertStore {
    /// Reads both files; fails as [`load_certified_key`] does.
    pub fn load(cert_file: PathBuf, key_file: PathBuf) -> Result<Arc<CertStore>, TlsError> {
        let settled = Stamp::of(&cert_file, &key_file);
        let key = load_certified_key(&cert_file, &key_file)?;
        let watch = Mutex::new(Watch { settled, pending: None });
        Ok(Arc::new(CertStore { cert_file, key_file, current: RwLock::new(Arc::new(key)), watch }))
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the files again now, whether or not they changed (SIGHUP).
    pub fn reload_now(&self) -> Reload {
        let stamp = Stamp::of(&self.cert_file, &self.key_file);
        self.try_load(stamp, "SIGHUP")
    }

    /// One poll: reloads once a change has held still since the previous poll.
    pub fn poll(&self) -> Reload {
        let stamp = Stamp::of(&self.cert_file, &self.key_file);
        {
            let mut w = self.watch.lock().unwrap_or_else(|p| p.into_inner());
            if stamp == w.settled {
                w.pending = None;
                return Reload::Unchanged;
            }
            if w.pending.as_ref() != Some(&stamp) {
                w.pending = Some(stamp);
                return Reload::Unchanged;
            }
        }
        self.try_load(stamp, "file change")
    }

    /// Loads the files seen as `stamp` (`why` is logged); the stamp is settled either way, so a failed change is
    /// tried (and warned about) once, until the files change again or SIGHUP asks.
    fn try_load(&self, stamp: Stamp, why: &'static str) -> Reload {
        let result = load_certified_key(&self.cert_file, &self.key_file);
        {
            let mut w = self.watch.lock().unwrap_or_else(|p| p.into_inner());
            (w.settled, w.pending) = (stamp, None);
        }
        match result {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
                tracing::info!(cert_file = %self.cert_file.display(), %why, "reloaded the TLS certificate");
                Reload::Reloaded
            }
            Err(e) => {
                tracing::warn!(error = %e, %why, "cannot reload the TLS certificate; still serving the previous one");
                Reload::Failed(e.to_string())
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for CertStore {
    fn resolve(&self, _root_hints: &[&[u8]], _sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Reloads `store` on SIGHUP at once, and on a change of its files seen by a poll every `every`,
/// until `stop` turns true.
pub(super) async fn reload_loop(store: Arc<CertStore>, every: Duration, mut stop: watch::Receiver<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler: the TLS certificate is reloaded only when its files change");
            None
        }
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let hup = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            got = hup => Some(got.is_some()),
            _ = tick.tick() => None,
        };
        match event {
            Some(true) => {
                store.reload_now();
            }
            // The signal stream ended (it does not, in practice): polls go on.
            Some(false) => hangup = None,
            None => {
                store.poll();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::init::{issue, new_ca};

    fn write_pair(dir: &Path, host: &str, ca: &crate::tls::init::Ca) -> (PathBuf, PathBuf) {
        let (cert, key) = issue(ca, host, 30).unwrap();
        let (c, k) = (dir.join(format!("{host}.pem")), dir.join(format!("{host}-key.pem")));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }

    /// Replaces `path` by a rename, as an operator's `mv` does (a new inode: the stamp changes
    /// even when the size and the modification time's granularity would not show it).
    fn replace(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    fn leaf(store: &CertStore) -> Vec<u8> {
        store.current().end_entity_cert().unwrap().to_vec()
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let ca = new_ca(30).unwrap();
        let (cert, key) = write_pair(dir.path(), "a", &ca);
        let (_, other_key) = write_pair(dir.path(), "b", &ca);
        load_certified_key(&cert, &key).unwrap();
        let missing = dir.path().join("missing.pem");
        let err = load_certified_key(&missing, &key).unwrap_err().to_string();
        assert!(err.contains("certificate file") && err.contains("missing.pem"), "{err}");
        let err = load_certified_key(&key, &key).unwrap_err().to_string();
        assert!(err.contains("a-key.pem") && err.contains("no certificate"), "{err}");
        let err = load_certified_key(&cert, &cert).unwrap_err().to_string();
        assert!(err.contains("a.pem") && err.contains("no private key"), "{err}");
        let err = load_certified_key(&cert, &other_key).unwrap_err().to_string();
        assert!(err.contains("does not belong") && err.contains("b-key.pem"), "{err}");
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n").unwrap();
        let err = load_certified_key(&cert, &bad).unwrap_err().to_string();
        assert!(err.contains("bad.pem"), "{err}");
        assert!(!err.contains("!!!"), "no key bytes in messages: {err}");
    }

    #[test]
    fn a_change_is_loaded_once_it_holds_still_and_a_bad_one_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = new_ca(30).unwrap();
        let (cert, key) = write_pair(dir.path(), "a", &ca);
        let store = CertStore::load(cert.clone(), key.clone()).unwrap();
        let first = leaf(&store);
        assert_eq!(store.poll(), Reload::Unchanged, "nothing changed");

        // Phase 1: new files; the first poll sees the change, the second loads it.
        let (new_cert, new_key) = issue(&ca, "a", 30).unwrap();
        replace(&cert, &new_cert);
        replace(&key, &new_key);
        assert_eq!(store.poll(), Reload::Unchanged, "a change is acted on once it holds still");
        assert_eq!(store.poll(), Reload::Reloaded);
        let second = leaf(&store);
        assert_ne!(first, second);

        // Phase 2: a key that does not match: the old certificate stays, and the failure is
        // reported once, not on every poll.
        let (_, wrong_key) = issue(&ca, "a", 30).unwrap();
        replace(&key, &wrong_key);
        assert_eq!(store.poll(), Reload::Unchanged);
        assert!(matches!(store.poll(), Reload::Failed(m) if m.contains("does not belong")));
        assert_eq!(store.poll(), Reload::Unchanged, "the same bad files are not tried again");
        assert_eq!(leaf(&store), second);

        // Phase 3: SIGHUP's reload reads the files whatever their stamp.
        replace(&key, &new_key);
        assert_eq!(store.reload_now(), Reload::Reloaded);
        assert_eq!(leaf(&store), second, "the same pair again");
    }
}
