//! The first admin token of a cluster with auth on.
//!
//! A cluster whose state holds no token cannot be administered, so the node that bootstraps it
//! (no `--join`) makes one as soon as it leads: it takes the secret from
//! `--bootstrap-token-file` if given; else it makes one (or takes the one an interrupted attempt
//! left in `<data_dir>/admin.token.pending`), writes it there first (`0600`, fsynced), proposes
//! its hash, and once the token is committed renames the file to `<data_dir>/admin.token`. The
//! secret is on disk before its hash is proposed, so a crash can never leave a token whose secret
//! is lost; and `admin.token` appears only once it works, so whoever waits for the file can use it
//! at once (on this node; another node may apply the entry a moment later).
//!
//! Nothing is done once the state holds any token (another node made it, or this one did before
//! a restart). If every token is revoked, the next start of a node without `--join` makes a new
//! admin token the same way: whoever can read a node's data directory owns the node anyway.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cronraft_api::routes::tokens::new_secret;
use cronraft_raft::model::{token_hash, Role, TokenScope, TokenSpec};
use cronraft_raft::store::StateMachineStore;
use cronraft_raft::{Command, Raft, Request, Response};
use tokio::sync::watch;

use crate::cli::read_token;

/// The file, in the data directory, the first admin token is written to.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// Where the secret waits until its token is committed.
pub const PENDING_FILE: &str = "admin.token.pending";
/// The token's name, and the author its creation is listed under.
pub const ADMIN_TOKEN_NAME: &str = "admin";
pub const BOOTSTRAP_AUTHOR: &str = "bootstrap";
/// Fewest bytes of a bootstrap token an operator supplies.
pub const BOOTSTRAP_TOKEN_BYTES_MIN: usize = 32;
const POLL: Duration = Duration::from_millis(200);

/// Why the first admin token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error("{0}")]
    Read(String),
    #[error("the bootstrap token in {path} is {len} bytes; use at least {BOOTSTRAP_TOKEN_BYTES_MIN} random ones")]
    Short { path: String, len: usize },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("{0}")]
    Secret(String),
}

/// Waits until this node leads (or some token exists), then makes the first admin token.
/// Returns when done, when not needed, or when `stop` turns true.
pub async fn ensure(
    raft: Raft,
    sm: StateMachineStore,
    data_dir: PathBuf,
    supplied: Option<PathBuf>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match sm.view().token_count() {
            Ok(n) if n > 0 => return,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the tokens"),
        }
        if raft.metrics().borrow().state == openraft::ServerState::Leader {
            match attempt(&raft, &data_dir, supplied.as_deref()).await {
                Ok(Some(path)) => {
                    tracing::info!(file = %path.display(), "made the first admin token (send it as `Authorization: Bearer`, or use `--token-file`)");
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot make the first admin token");
                    return;
                }
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// One try: `Ok(Some(file))` once the token is in the state, `Ok(None)` to try again later.
async fn attempt(raft: &Raft, data_dir: &Path, supplied: Option<&Path>) -> Result<Option<PathBuf>, AdminTokenError> {
    let (secret, path) = match supplied {
        Some(path) => {
            let secret = read_token(None, Some(path)).map_err(AdminTokenError::Read)?.unwrap_or_default();
            if secret.len() < BOOTSTRAP_TOKEN_BYTES_MIN {
                return Err(AdminTokenError::Short { path: path.display().to_string(), len: secret.len() });
            }
            (secret, path.to_path_buf())
        }
        None => {
            let pending = data_dir.join(PENDING_FILE);
            let secret = match read_token(None, Some(&pending)) {
                Ok(Some(s)) => s,
                _ => write_new(&pending)?,
            };
            (secret, pending)
        }
    };
    let spec = TokenSpec {
        name: ADMIN_TOKEN_NAME.into(),
        role: Role::Admin,
        scope: TokenScope::default(),
        hash: token_hash(&secret),
    };
    let command = Command::CreateToken { spec, created_by: BOOTSTRAP_AUTHOR.into() };
    let attributed = Command::Attributed { by: BOOTSTRAP_AUTHOR.into(), command: Box::new(command) };
    let request =
        Request { request_id: "bootstrap-admin-token".into(), now_ms: crate::clock::now_ms(), command: attributed };
    match tokio::time::timeout(Duration::from_secs(5), raft.client_write(request)).await {
        Ok(Ok(resp)) => match resp.data {
            Response::Token(_) if supplied.is_some() => Ok(Some(path)),
            Response::Token(_) => publish(&path, &data_dir.join(ADMIN_TOKEN_FILE)).map(Some),
            Response::Rejected(r) => {
                tracing::warn!(reason = %r, "the first admin token was refused");
                Ok(Some(path))
            }
            other => Err(AdminTokenError::Secret(format!("unexpected answer {other:?}"))),
        },
        Ok(Err(e)) => {
            tracing::info!(error = %e, "first admin token not written yet; retrying");
            Ok(None)
        }
        Err(_) => Ok(None),
    }
}

/// Renames the committed token's file from `pending` to `done`, durably.
fn publish(pending: &Path, done: &Path) -> Result<PathBuf, AdminTokenError> {
    let io = |source| AdminTokenError::Write { path: done.display().to_string(), source };
    std::fs::rename(pending, done).map_err(io)?;
    if let Some(dir) = done.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(done.to_path_buf())
}

/// Makes a new token and writes it to `path` (`0600`, created new, fsynced).
fn write_new(path: &Path) -> Result<String, AdminTokenError> {
    let secret = new_secret().map_err(|e| AdminTokenError::Secret(e.message))?;
    let shown = path.display().to_string();
    let io = |source| AdminTokenError::Write { path: shown.clone(), source };
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(io)?;
    f.write_all(format!("{secret}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    // The new directory entry too, so the file survives a crash that the token's commit may not.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(secret)
}
