//! The cluster secret: what every node of one cluster shares, and how a node proves it has it.
//!
//! Operators write the same file (32 bytes or more, e.g. `head -c 32 /dev/urandom | base64`) on
//! every node and name it with `--cluster-secret-file`. A node never sends the secret itself: its
//! calls to other nodes (Raft RPC, the internal read index, `/cluster/self`, `--join`, the
//! embedded agent's registration and reports) carry `Authorization: Bearer crp_<hex>`, a key
//! derived from the secret with blake3's key derivation. Checking compares blake3 hashes, which
//! `blake3::Hash` does in constant time, so the answer's timing says nothing about how much of a
//! guess was right. Without TLS the derived credential crosses the network in clear and could be
//! replayed by someone who can read the traffic: `docs/operating/security.md` says so.

use std::path::Path;

/// Fewest bytes a cluster secret has (after trimming surrounding whitespace).
pub const CLUSTER_SECRET_BYTES_MIN: usize = 32;
/// Largest cluster secret file read.
pub const CLUSTER_SECRET_BYTES_MAX: usize = 4096;
/// What every node credential starts with, so it cannot be mistaken for an API token (`crt_`).
pub const CREDENTIAL_PREFIX: &str = "crp_";
const DERIVE_CONTEXT: &str = "cronraft 2026-12 cluster credential v1";
const EXECUTOR_KEY_CONTEXT: &str = "cronraft 2026-12 executor signing root v1";
const CALLBACK_KEY_CONTEXT: &str = "cronraft 2026-12 callback token key v1";

/// Why a cluster secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the cluster secret file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the cluster secret in {path} is {len} bytes; it needs {CLUSTER_SECRET_BYTES_MIN} to {CLUSTER_SECRET_BYTES_MAX} (e.g. `head -c 32 /dev/urandom | base64 > {path}`)")]
    Length { path: String, len: usize },
    #[error(
        "{path} has {lines} secrets; it takes 1 to {CLUSTER_SECRETS_MAX}, one per line (the first is the current one)"
    )]
    Lines { path: String, lines: usize },
}

/// Most secrets one file holds (the current one and those still accepted during a rotation).
pub const CLUSTER_SECRETS_MAX: usize = 4;

/// What one secret derives: the credential sent and checked, and the executors' and callbacks' keys.
#[derive(Clone)]
struct Derived {
    /// `crp_` + the hex of the derived key: what travels in `Authorization: Bearer`.
    credential: String,
    /// Its hash, which presented credentials are compared with.
    hash: blake3::Hash,
    /// The root of the executors' signing keys ([`ClusterSecret::executor_key`]).
    executor_root: [u8; 32],
    /// The key of the callback tokens handed to executors ([`ClusterSecret::callback_token`]).
    callback_key: [u8; 32],
}

impl Derived {
    fn new(secret: &[u8]) -> Derived {
        let key = blake3::derive_key(DERIVE_CONTEXT, secret);
        let credential = format!("{CREDENTIAL_PREFIX}{}", blake3::Hash::from(key).to_hex());
        let hash = blake3::hash(credential.as_bytes());
        let executor_root = blake3::derive_key(EXECUTOR_KEY_CONTEXT, secret);
        let callback_key = blake3::derive_key(CALLBACK_KEY_CONTEXT, secret);
        Derived { credential, hash, executor_root, callback_key }
    }

    fn callback_token(&self, execution_id: u64, attempt: u32, stored: &str) -> String {
        let mut h = blake3::Hasher::new_keyed(&self.callback_key);
        h.update(&execution_id.to_be_bytes());
        h.update(&attempt.to_be_bytes());
        h.update(stored.as_bytes());
        h.finalize().to_hex()[..32].to_string()
    }
}

/// A node's proof of membership, derived from the cluster secret. `Debug` shows nothing of it.
///
/// The file holds one secret per line: the first is the one this node uses (its credential, the
/// executors' keys, callback tokens); every line is accepted. That is how the secret rotates
/// without downtime (`docs/operating/security.md`): add the new secret as a second line
/// everywhere, then make it the first, then drop the old one, restarting the nodes one at a time
/// at each step.
#[derive(Clone)]
pub struct ClusterSecret {
    /// The current secret first, then the others still accepted.
    keys: Vec<Derived>,
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    /// From a file's bytes: one secret per non-empty line (surrounding whitespace ignored), at
    /// most [`CLUSTER_SECRETS_MAX`], the first the current one.
    pub fn from_bytes(secret: &[u8], origin: &str) -> Result<Self, SecretError> {
        let lines: Vec<&[u8]> =
            secret.split(|b| *b == b'\n').map(|l| l.trim_ascii()).filter(|l| !l.is_empty()).collect();
        if lines.is_empty() || lines.len() > CLUSTER_SECRETS_MAX {
            return Err(SecretError::Lines { path: origin.to_string(), lines: lines.len() });
        }
        let mut keys = Vec::with_capacity(lines.len());
        for line in lines {
            if line.len() < CLUSTER_SECRET_BYTES_MIN || line.len() > CLUSTER_SECRET_BYTES_MAX {
                return Err(SecretError::Length { path: origin.to_string(), len: line.len() });
            }
            keys.push(Derived::new(line));
        }
        Ok(ClusterSecret { keys })
    }

    fn current(&self) -> &Derived {
        &self.keys[0]
    }

    /// Reads the secret from a file.
    pub fn read_file(path: &Path) -> Result<Self, SecretError> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| SecretError::Read { path: shown.clone(), source })?;
        let max = (CLUSTER_SECRET_BYTES_MAX as u64 + 64) * CLUSTER_SECRETS_MAX as u64;
        if meta.len() > max {
            return Err(SecretError::Length { path: shown, len: meta.len() as usize });
        }
        let bytes = std::fs::read(path).map_err(|source| SecretError::Read { path: shown.clone(), source })?;
        Self::from_bytes(&bytes, &shown)
    }

    /// The key the leader signs requests to executor instance `instance_id` with (and which
    /// that instance gets when it registers). Every node computes the same key; none is stored.
    pub fn executor_key(&self, instance_id: &str) -> [u8; 32] {
        *blake3::keyed_hash(&self.current().executor_root, instance_id.as_bytes()).as_bytes()
    }

    /// The keys of every accepted secret for `instance_id`, the current one first: a registration
    /// hands them all over, so an agent keeps taking requests while the secrets swap places.
    pub fn executor_keys(&self, instance_id: &str) -> Vec<[u8; 32]> {
        self.keys.iter().map(|d| *blake3::keyed_hash(&d.executor_root, instance_id.as_bytes()).as_bytes()).collect()
    }

    /// The callback token an executor gets for attempt `attempt` of execution `execution_id`,
    /// whose replicated token is `stored`: 128 bits of a keyed hash under a key only the nodes
    /// know, so it cannot be guessed from the log or from other attempts' tokens. The node that
    /// takes a callback recomputes it and compares in constant time ([`ClusterSecret::callback_matches`]).
    pub fn callback_token(&self, execution_id: u64, attempt: u32, stored: &str) -> String {
        self.current().callback_token(execution_id, attempt, stored)
    }

    /// Whether `presented` is the callback token of that attempt under any accepted secret
    /// (constant time for each; every one is computed).
    pub fn callback_matches(&self, execution_id: u64, attempt: u32, stored: &str, presented: &str) -> bool {
        let presented = blake3::hash(presented.as_bytes());
        self.keys
            .iter()
            .map(|d| blake3::hash(d.callback_token(execution_id, attempt, stored).as_bytes()) == presented)
            .fold(false, |any, m| any | m)
    }

    /// The bearer credential itself (`crp_…`), for clients that add `Bearer ` themselves.
    pub fn credential(&self) -> &str {
        &self.current().credential
    }

    /// The value of the `Authorization` header a node sends.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.current().credential)
    }

    /// Whether a presented bearer value is the credential of an accepted secret (constant time
    /// for each; every one is compared).
    pub fn accepts(&self, bearer: &str) -> bool {
        let h = blake3::hash(bearer.as_bytes());
        self.keys.iter().map(|d| d.hash == h).fold(false, |any, m| any | m)
    }

    /// Whether the `Authorization` header value carries an accepted credential.
    pub fn accepts_header(&self, value: Option<&[u8]>) -> bool {
        match value.and_then(|v| std::str::from_utf8(v).ok()).and_then(bearer) {
            Some(b) => self.accepts(b),
            None => false,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_is_derived_not_the_secret_and_checks_only_the_same_secret() {
        let secret = b"0123456789abcdef0123456789abcdef\n";
        let a = ClusterSecret::from_bytes(secret, "test").unwrap();
        assert!(!a.authorization().contains("0123456789abcdef"), "the secret itself never travels");
        assert!(a.accepts_header(Some(a.authorization().as_bytes())));
        let other = ClusterSecret::from_bytes(b"another secret that is long enough!!", "test").unwrap();
        assert!(!a.accepts_header(Some(other.authorization().as_bytes())));
        assert!(!a.accepts_header(None));
        assert!(!a.accepts_header(Some(b"Basic abc")));
        assert!(matches!(ClusterSecret::from_bytes(b"short", "f"), Err(SecretError::Length { len: 5, .. })));
        assert_eq!(format!("{a:?}"), "ClusterSecret(..)");
    }

    #[test]
    fn during_a_rotation_both_secrets_are_accepted_and_the_first_is_the_one_used() {
        let old = b"the-old-cluster-secret-0123456789abcdef".as_slice();
        let new = b"the-new-cluster-secret-0123456789abcdef".as_slice();
        let only_old = ClusterSecret::from_bytes(old, "t").unwrap();
        let only_new = ClusterSecret::from_bytes(new, "t").unwrap();
        // Step 1: [old, new] sends old, accepts both; step 2: [new, old] sends new, accepts both.
        let step1 = ClusterSecret::from_bytes(&[old, b"\n", new, b"\n"].concat(), "t").unwrap();
        let step2 = ClusterSecret::from_bytes(&[new, b"\n\n", old].concat(), "t").unwrap();
        assert_eq!(step1.authorization(), only_old.authorization());
        assert_eq!(step2.authorization(), only_new.authorization());
        for s in [&step1, &step2] {
            assert!(s.accepts_header(Some(only_old.authorization().as_bytes())));
            assert!(s.accepts_header(Some(only_new.authorization().as_bytes())));
        }
        assert!(!only_old.accepts_header(Some(only_new.authorization().as_bytes())));
        // A callback token made under either secret is taken by a node that accepts both.
        let token = only_old.callback_token(7, 1, "stored");
        assert!(step2.callback_matches(7, 1, "stored", &token));
        assert!(!only_new.callback_matches(7, 1, "stored", &token));
        assert_eq!(step2.executor_keys("i").len(), 2);
        assert_eq!(step2.executor_keys("i")[1], only_old.executor_key("i"));
        let five = [old, new, old, new, old].join(&b'\n');
        assert!(matches!(ClusterSecret::from_bytes(&five, "f"), Err(SecretError::Lines { lines: 5, .. })));
    }
}
