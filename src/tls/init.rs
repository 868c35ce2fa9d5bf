//! `cronraft certs init`: a small CA and one certificate per host, so a TLS cluster takes one
//! command instead of a PKI tool's dozen steps.
//!
//! Each host gets one certificate with its names as subject alternative names (DNS names, or IP
//! addresses for what parses as one), usable both as a server certificate (its listeners) and as
//! a client certificate (its calls to the other nodes, which check it with `peer_client_auth`).
//! Keys are ECDSA P-256, written as PKCS#8 PEM with mode `0600`.
//!
//! Nothing is overwritten without `--force`, and the CA never is: when `ca.pem` and `ca-key.pem`
//! are already in the directory they sign the new certificates, so the same command adds a host
//! or, with `--force`, re-issues one (certificate rotation) without touching the others.
//! All files are checked before any is written, so a refusal leaves the directory as it was.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// The CA's file names in the output directory.
pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";
/// How long a new CA is valid.
pub const CA_DAYS: u32 = 3650;
/// How long a host certificate is valid unless `--days` says otherwise.
pub const HOST_DAYS_DEFAULT: u32 = 825;
/// Most hosts in one command, and most names per host.
pub const HOSTS_MAX: usize = 64;
pub const NAMES_PER_HOST_MAX: usize = 16;

/// Why `certs init` did nothing (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0}")]
    Invalid(String),
    #[error("would overwrite {}; pass --force to replace host certificates (the CA is never replaced)", .0.join(", "))]
    Exists(Vec<String>),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the CA in {dir}: {reason}")]
    Ca { dir: PathBuf, reason: String },
    #[error("certificate for {host}: {source}")]
    Issue { host: String, source: rcgen::Error },
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct InitRequest {
    /// One entry per host: its names joined by `+` (`node1+10.0.0.1`); the first names the files.
    pub hosts: Vec<String>,
    pub out: PathBuf,
    pub force: bool,
    pub days: u32,
}

/// A CA that signs host certificates.
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// Start and end of a validity of `days` days, starting an hour ago (clocks differ a little).
fn validity(days: u32) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::hours(1), now + Duration::days(i64::from(days)))
}

/// A new CA, valid `days` days, that may sign host certificates only (path length 0).
pub fn new_ca(days: u32) -> Result<Ca, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "cronraft cluster CA");
    params.distinguished_name.push(DnType::OrganizationName, "cronraft");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    (params.not_before, params.not_after) = validity(days);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let key_pem = key.serialize_pem();
    Ok(Ca { cert_pem: cert.pem(), key_pem, issuer: Issuer::new(params, key) })
}

/// The CA saved in `ca.pem` and `ca-key.pem`.
pub fn load_ca(cert_pem: String, key_pem: String) -> Result<Ca, rcgen::Error> {
    let key = KeyPair::from_pem(&key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
    Ok(Ca { cert_pem, key_pem, issuer })
}

/// A certificate for `names` (`+`-separated: DNS names and IP addresses), signed by `ca`, valid
/// `days` days, for server and client use. Returns the certificate and key PEM.
pub fn issue(ca: &Ca, names: &str, days: u32) -> Result<(String, String), rcgen::Error> {
    let names: Vec<String> = names.split('+').map(str::to_string).collect();
    let mut params = CertificateParams::new(names.clone())?;
    params.distinguished_name.push(DnType::CommonName, names[0].as_str());
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    (params.not_before, params.not_after) = validity(days);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The file stem of a host entry: its first name, with anything but letters, digits, `.`, `-`
/// and `_` made `_` (an IPv6 address has colons).
pub fn file_stem(entry: &str) -> String {
    let first = entry.split('+').next().unwrap_or(entry);
    first.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect()
}

/// Checks the host list: bounded, non-empty names, no duplicate file names.
fn check_hosts(hosts: &[String]) -> Result<(), InitError> {
    let bad = |m: String| Err(InitError::Invalid(m));
    if hosts.is_empty() || hosts.len() > HOSTS_MAX {
        return bad(format!("--hosts takes 1 to {HOSTS_MAX} hosts"));
    }
    let mut stems = std::collections::BTreeSet::new();
    for h in hosts {
        let names: Vec<&str> = h.split('+').collect();
        if names.len() > NAMES_PER_HOST_MAX || names.iter().any(|n| n.is_empty() || n.len() > 253) {
            return bad(format!("host {h:?}: 1 to {NAMES_PER_HOST_MAX} names joined by +, none empty"));
        }
        if !stems.insert(file_stem(h)) {
            return bad(format!("host {h:?} appears twice (or two hosts share the file name {})", file_stem(h)));
        }
    }
    Ok(())
}

/// Issues the certificates and writes them; returns the report to print (what was written, and
/// the next steps).
pub fn run(req: &InitRequest) -> Result<String, InitError> {
    check_hosts(&req.hosts)?;
    if req.days == 0 {
        return Err(InitError::Invalid("--days must be at least 1".into()));
    }
    let (ca_cert, ca_key) = (req.out.join(CA_CERT), req.out.join(CA_KEY));
    let existing_ca = match (ca_cert.exists(), ca_key.exists()) {
        (true, true) => true,
        (false, false) => false,
        _ => {
            let reason = format!("only one of {CA_CERT} and {CA_KEY} is there; restore the other or use another --out");
            return Err(InitError::Ca { dir: req.out.clone(), reason });
        }
    };
    let targets: Vec<(String, PathBuf, PathBuf)> = req
        .hosts
        .iter()
        .map(|h| {
            (
                h.clone(),
                req.out.join(format!("{}.pem", file_stem(h))),
                req.out.join(format!("{}-key.pem", file_stem(h))),
            )
        })
        .collect();
    if !req.force {
        let taken: Vec<String> = targets
            .iter()
            .flat_map(|(_, c, k)| [c, k])
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !taken.is_empty() {
            return Err(InitError::Exists(taken));
        }
    }

    let mut report = String::new();
    let ca = if existing_ca {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|source| InitError::Io { path: p.into(), source });
        let ca = load_ca(read(&ca_cert)?, read(&ca_key)?)
            .map_err(|e| InitError::Ca { dir: req.out.clone(), reason: e.to_string() })?;
        let _ = writeln!(report, "using the existing CA in {} (it is never replaced)", ca_cert.display());
        ca
    } else {
        create_private_dir(&req.out)?;
        let ca = new_ca(CA_DAYS).map_err(|source| InitError::Issue { host: "the CA".into(), source })?;
        write_file(&ca_cert, &ca.cert_pem, 0o644, false)?;
        write_file(&ca_key, &ca.key_pem, 0o600, false)?;
        let _ = writeln!(report, "wrote {}  (CA certificate: every node and client trusts it)", ca_cert.display());
        let _ = writeln!(report, "wrote {}  (CA key: keep it offline; only to issue certificates)", ca_key.display());
        ca
    };
    for (host, cert, key) in &targets {
        let (cert_pem, key_pem) =
            issue(&ca, host, req.days).map_err(|source| InitError::Issue { host: host.clone(), source })?;
        write_file(cert, &cert_pem, 0o644, req.force)?;
        write_file(key, &key_pem, 0o600, req.force)?;
        let names = host.replace('+', ", ");
        let _ = writeln!(report, "wrote {} and {}  ({names}; {} days)", cert.display(), key.display(), req.days);
    }
    report.push_str(&next_steps(req, &targets));
    Ok(report)
}

fn next_steps(req: &InitRequest, targets: &[(String, PathBuf, PathBuf)]) -> String {
    let (host, cert, key) = &targets[0];
    let first = host.split('+').next().unwrap_or(host);
    let file = |p: &Path| p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let mut s = String::from("\nnext steps:\n");
    let _ = writeln!(
        s,
        "  1. copy {CA_CERT} and each host's own NAME.pem and NAME-key.pem to that host (e.g. /etc/cronraft/tls/, \
         the key readable only by the cronraft user); {CA_KEY} stays here"
    );
    let _ = writeln!(
        s,
        "  2. start each node with its files, the same on every node (TLS is all or nothing):\n     cronraft serve \
         --tls-cert-file {} --tls-key-file {} --tls-ca-file {CA_CERT} ...   (--join https://{first}:7340 on the others)",
        file(cert),
        file(key)
    );
    let _ = writeln!(s, "     and set peer_client_auth = true in [tls] so the Raft port takes only these certificates");
    let _ = writeln!(s, "  3. clients: cronraft cluster status --node https://{first}:7340 --ca-file {CA_CERT}");
    let _ = writeln!(
        s,
        "  to rotate a host's certificate: cronraft certs init --hosts {host} --out {} --force, copy it, then \
         kill -HUP the node (or wait for it to notice the files)",
        req.out.display()
    );
    s
}

fn create_private_dir(dir: &Path) -> Result<(), InitError> {
    let io = |source| InitError::Io { path: dir.into(), source };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// Writes `text` to `path` with `mode`; refuses an existing file unless `replace`. A replaced
/// file gets `mode` too, whatever it had.
fn write_file(path: &Path, text: &str, mode: u32, replace: bool) -> Result<(), InitError> {
    let io = |source| InitError::Io { path: path.into(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(mode);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(io)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(out: &Path, hosts: &[&str], force: bool) -> InitRequest {
        InitRequest { hosts: hosts.iter().map(|h| h.to_string()).collect(), out: out.into(), force, days: 30 }
    }

    #[test]
    fn files_are_written_private_and_never_overwritten_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("certs");
        // Phase 1: a CA and two hosts, keys 0600.
        let report = run(&request(&out, &["node1", "127.0.0.1"], false)).unwrap();
        assert!(report.contains("ca.pem") && report.contains("next steps"), "{report}");
        let mode = |f: &str| std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("ca-key.pem"), mode("node1-key.pem"), mode("127.0.0.1-key.pem")), (0o600, 0o600, 0o600));
        assert_eq!(mode("node1.pem"), 0o644);
        let before = std::fs::read(out.join("node1.pem")).unwrap();
        let ca_before = std::fs::read(out.join("ca-key.pem")).unwrap();

        // Phase 2: the same host again is refused, and nothing at all is written.
        let err = run(&request(&out, &["node3", "node1"], false)).unwrap_err().to_string();
        assert!(err.contains("node1.pem") && err.contains("--force"), "{err}");
        assert!(!out.join("node3.pem").exists(), "a refusal writes nothing");
        assert_eq!(std::fs::read(out.join("node1.pem")).unwrap(), before);

        // Phase 3: --force re-issues the host with the same CA; the CA is kept.
        let report = run(&request(&out, &["node1"], true)).unwrap();
        assert!(report.contains("existing CA"), "{report}");
        assert_ne!(std::fs::read(out.join("node1.pem")).unwrap(), before);
        assert_eq!(std::fs::read(out.join("ca-key.pem")).unwrap(), ca_before);
    }

    #[test]
    fn host_lists_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        for (hosts, want) in [(vec![], "1 to"), (vec!["a", "a"], "twice"), (vec!["a+"], "none empty")] {
            let err = run(&request(dir.path(), &hosts, false)).unwrap_err().to_string();
            assert!(err.contains(want), "{hosts:?}: {err}");
        }
        assert_eq!(file_stem("::1+node"), "__1");
    }
}
