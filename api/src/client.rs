//! A typed Rust client for the REST API, used by the CLI, the integration tests and the chaos
//! harness.
//!
//! It knows several nodes and tries them in order when one refuses the connection; any node
//! serves any request (writes are forwarded to the leader server-side). Errors keep the server's
//! stable code, so callers can branch on `task_name_taken`, `no_leader`, and so on.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use cronraft_raft::model::ExecutorStatus;
use cronraft_raft::outbound::{self, BuildError, ClientTls};

use cronraft_raft::store::backup::{read_backup, BackupSummary};

use crate::context::Consistency;
use crate::protocol::{CallbackRequest, RegisterRequest};
use crate::types::{
    AddNodeInput, AuditView, ChannelInput, ChannelView, ClusterView, CreatedTokenView, DigestView, ErrorBody,
    ExecutionView, ExecutorStatusInput, ExecutorView, MembershipChangeView, NotificationsView, Page, PreviewView,
    RegisteredView, RuleInput, RuleView, SchedulerStatusView, StopInput, TaskInput, TaskStatsView, TaskView,
    TokenInput, TokenView, TriggerInput, IDEMPOTENCY_HEADER,
};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{code}: {message} (HTTP {status})")]
    Api { status: u16, code: String, message: String },
    /// No node accepted the connection.
    #[error("no node reachable: {0}")]
    Unreachable(String),
    /// The request was sent but failed in transit (e.g. a timeout): its effect is unknown.
    #[error("request failed: {0}")]
    Transport(String),
    /// The answer did not have the expected shape.
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl ClientError {
    /// The server's machine code, if the server answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A raw answer: status, the `Idempotency-Key` echoed back, and the body text.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub idempotency_key: Option<String>,
    pub body: String,
}

/// A token every `Client` made afterwards in this process sends, unless given its own with
/// [`Client::with_token`]. Unset by default; the chaos harness sets it once for a run with auth
/// on, so its many short-lived clients (workloads, nemeses, checkers' reads) need no plumbing.
static PROCESS_TOKEN: std::sync::RwLock<Option<String>> = std::sync::RwLock::new(None);

/// The client TLS every `Client` made with [`Client::with_timeout`] (or [`Client::new`]) in this
/// process uses, when set: the chaos harness sets it once for a cluster with TLS on (its CA, and
/// `https://` node URLs). Unset: plain defaults (system roots).
static PROCESS_TLS: std::sync::RwLock<Option<ClientTls>> = std::sync::RwLock::new(None);

/// Sets (or clears) [`PROCESS_TLS`].
pub fn set_process_tls(tls: Option<ClientTls>) {
    *PROCESS_TLS.write().unwrap_or_else(|p| p.into_inner()) = tls;
}

/// The client TLS set with [`set_process_tls`], if any.
pub fn process_tls() -> Option<ClientTls> {
    PROCESS_TLS.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Sets (or clears) the token of [`PROCESS_TOKEN`].
pub fn set_process_token(token: Option<String>) {
    *PROCESS_TOKEN.write().unwrap_or_else(|p| p.into_inner()) = token;
}

/// The token set with [`set_process_token`], if any.
pub fn process_token() -> Option<String> {
    PROCESS_TOKEN.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Client for one cluster.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Base URLs, e.g. `http://127.0.0.1:7340`.
    nodes: Vec<String>,
    /// `Bearer <token>` sent with every request, when the cluster has auth on.
    authorization: Option<String>,
}

impl Client {
    /// A client for the nodes at `nodes` (base URLs; `http://` is added when missing).
    pub fn new<S: AsRef<str>>(nodes: impl IntoIterator<Item = S>) -> Self {
        Self::with_timeout(nodes, Duration::from_secs(15))
    }

    pub fn with_timeout<S: AsRef<str>>(nodes: impl IntoIterator<Item = S>, timeout: Duration) -> Self {
        let tls = PROCESS_TLS.read().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
        Self::with_tls(nodes, timeout, &tls).expect("build HTTP client")
    }

    /// A client whose TLS is `tls` (the CA it trusts beyond the system roots; a node's own
    /// certificate for `--join`). A node given without a scheme gets `tls`'s node scheme.
    pub fn with_tls<S: AsRef<str>>(
        nodes: impl IntoIterator<Item = S>,
        timeout: Duration,
        tls: &ClientTls,
    ) -> Result<Self, BuildError> {
        let nodes = nodes
            .into_iter()
            .map(|n| {
                let n = n.as_ref().trim_end_matches('/');
                if n.starts_with("http://") || n.starts_with("https://") {
                    n.to_string()
                } else {
                    tls.node_url(n)
                }
            })
            .collect();
        let http = outbound::cli(timeout, tls)?;
        let authorization = process_token().map(|t| format!("Bearer {t}"));
        Ok(Client { http, nodes, authorization })
    }

    /// The same client, sending `token` (an API token, or a node credential) as
    /// `Authorization: Bearer`.
    pub fn with_token(mut self, token: Option<&str>) -> Self {
        self.authorization = token.map(|t| format!("Bearer {}", t.trim()));
        self
    }

    /// Sends a request to the first node that accepts the connection.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        idempotency_key: Option<&str>,
    ) -> Result<RawResponse, ClientError> {
        let mut last = String::from("no nodes configured");
        for base in &self.nodes {
            let mut req = self.http.request(method.clone(), format!("{base}{path}"));
            if let Some(b) = &body {
                req = req.header("content-type", "application/json").body(b.clone());
            }
            if let Some(k) = idempotency_key {
                req = req.header(IDEMPOTENCY_HEADER, k);
            }
            if let Some(a) = &self.authorization {
                req = req.header(reqwest::header::AUTHORIZATION, a);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let idempotency_key =
                        resp.headers().get(IDEMPOTENCY_HEADER).and_then(|v| v.to_str().ok()).map(String::from);
                    let body = resp.text().await.map_err(|e| ClientError::Transport(e.to_string()))?;
                    return Ok(RawResponse { status, idempotency_key, body });
                }
                Err(e) if e.is_connect() => last = format!("{base}: {e}"),
                Err(e) => return Err(ClientError::Transport(format!("{base}: {e}"))),
            }
        }
        Err(ClientError::Unreachable(last))
    }

    /// Streams a backup of the whole state from the first node that takes the connection into
    /// `out`, checking it as it arrives (the checksum, the pair count and the digests, see
    /// `cronraft_raft::store::backup`); returns its summary and `out`. A backup that fails a
    /// check, or a stream cut short, is an error: whatever reached `out` is then not a backup.
    pub async fn backup<W: std::io::Write + Send + 'static>(&self, out: W) -> Result<(BackupSummary, W), ClientError> {
        let mut last = String::from("no nodes configured");
        for base in &self.nodes {
            let mut req = self.http.get(format!("{base}/api/v1/backup")).timeout(BACKUP_TIME_MAX);
            if let Some(a) = &self.authorization {
                req = req.header(reqwest::header::AUTHORIZATION, a);
            }
            match req.send().await {
                Ok(resp) if resp.status().is_success() => return receive_backup(resp, out).await,
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.text().await.map_err(|e| ClientError::Transport(e.to_string()))?;
                    return Err(match serde_json::from_str::<ErrorBody>(&body) {
                        Ok(e) => ClientError::Api { status, code: e.error.code, message: e.error.message },
                        Err(_) => ClientError::Decode(format!("HTTP {status}: {body}")),
                    });
                }
                Err(e) if e.is_connect() => last = format!("{base}: {e}"),
                Err(e) => return Err(ClientError::Transport(format!("{base}: {e}"))),
            }
        }
        Err(ClientError::Unreachable(last))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        idempotency_key: Option<&str>,
    ) -> Result<T, ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("serialize request"));
        let raw = self.raw(method, path, body, idempotency_key).await?;
        if StatusCode::from_u16(raw.status).map(|s| s.is_success()).unwrap_or(false) {
            return serde_json::from_str(&raw.body).map_err(|e| ClientError::Decode(format!("{e}: {}", raw.body)));
        }
        match serde_json::from_str::<ErrorBody>(&raw.body) {
            Ok(e) => Err(ClientError::Api { status: raw.status, code: e.error.code, message: e.error.message }),
            Err(_) => Err(ClientError::Decode(format!("HTTP {}: {}", raw.status, raw.body))),
        }
    }

    pub async fn create_task(&self, input: &TaskInput, idempotency_key: Option<&str>) -> Result<TaskView, ClientError> {
        self.call(Method::POST, "/api/v1/tasks", Some(input), idempotency_key).await
    }

    pub async fn get_task(&self, id_or_name: &str, consistency: Consistency) -> Result<TaskView, ClientError> {
        let path = format!("/api/v1/tasks/{}?consistency={}", encode_segment(id_or_name), consistency_str(consistency));
        self.call(Method::GET, &path, None::<&()>, None).await
    }

    pub async fn list_tasks(
        &self,
        status: Option<&str>,
        page: u64,
        page_size: u64,
        consistency: Consistency,
    ) -> Result<Page<TaskView>, ClientError> {
        let mut path =
            format!("/api/v1/tasks?page={page}&page_size={page_size}&consistency={}", consistency_str(consistency));
        if let Some(s) = status {
            path.push_str(&format!("&status={}", encode_segment(s)));
        }
        self.call(Method::GET, &path, None::<&()>, None).await
    }

    pub async fn update_task(
        &self,
        id_or_name: &str,
        input: &TaskInput,
        idempotency_key: Option<&str>,
    ) -> Result<TaskView, ClientError> {
        let path = format!("/api/v1/tasks/{}", encode_segment(id_or_name));
        self.call(Method::PUT, &path, Some(input), idempotency_key).await
    }

    pub async fn delete_task(&self, id_or_name: &str, idempotency_key: Option<&str>) -> Result<TaskView, ClientError> {
        let path = format!("/api/v1/tasks/{}", encode_segment(id_or_name));
        self.call(Method::DELETE, &path, None::<&()>, idempotency_key).await
    }

    pub async fn pause_task(&self, id_or_name: &str, idempotency_key: Option<&str>) -> Result<TaskView, ClientError> {
        let path = format!("/api/v1/tasks/{}/pause", encode_segment(id_or_name));
        self.call(Method::POST, &path, None::<&()>, idempotency_key).await
    }

    pub async fn resume_task(&self, id_or_name: &str, idempotency_key: Option<&str>) -> Result<TaskView, ClientError> {
        let path = format!("/api/v1/tasks/{}/resume", encode_segment(id_or_name));
        self.call(Method::POST, &path, None::<&()>, idempotency_key).await
    }

    pub async fn preview(
        &self,
        cron_expression: &str,
        timezone: &str,
        after: Option<DateTime<Utc>>,
        count: usize,
    ) -> Result<PreviewView, ClientError> {
        let mut path = format!(
            "/api/v1/schedule/preview?cron_expression={}&timezone={}&count={count}",
            encode_segment(cron_expression),
            encode_segment(timezone)
        );
        if let Some(t) = after {
            path.push_str(&format!("&after={}", encode_segment(&t.to_rfc3339())));
        }
        self.call(Method::GET, &path, None::<&()>, None).await
    }

    /// Executions newest first; `task` is an id or a name.
    pub async fn list_executions(
        &self,
        task: Option<&str>,
        status: Option<&str>,
        page: u64,
        page_size: u64,
        consistency: Consistency,
    ) -> Result<Page<ExecutionView>, ClientError> {
        let mut path = format!(
            "/api/v1/executions?page={page}&page_size={page_size}&consistency={}",
            consistency_str(consistency)
        );
        if let Some(t) = task {
            path.push_str(&format!("&task_id={}", encode_segment(t)));
        }
        if let Some(s) = status {
            path.push_str(&format!("&status={}", encode_segment(s)));
        }
        self.call(Method::GET, &path, None::<&()>, None).await
    }

    pub async fn get_execution(&self, id: u64, consistency: Consistency) -> Result<ExecutionView, ClientError> {
        let path = format!("/api/v1/executions/{id}?consistency={}", consistency_str(consistency));
        self.call(Method::GET, &path, None::<&()>, None).await
    }

    pub async fn trigger_task(
        &self,
        id_or_name: &str,
        input: &TriggerInput,
        idempotency_key: Option<&str>,
    ) -> Result<ExecutionView, ClientError> {
        let path = format!("/api/v1/tasks/{}/trigger", encode_segment(id_or_name));
        self.call(Method::POST, &path, Some(input), idempotency_key).await
    }

    /// Stops an active execution (it ends `cancelled`).
    pub async fn stop_execution(
        &self,
        id: u64,
        requested_by: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<ExecutionView, ClientError> {
        let input = StopInput { requested_by: requested_by.map(String::from) };
        self.call(Method::POST, &format!("/api/v1/executions/{id}/stop"), Some(&input), idempotency_key).await
    }

    /// An executor's report on its attempt. Retry with the same `idempotency_key` after a
    /// transport error: the report is applied at most once.
    pub async fn callback(
        &self,
        execution_id: u64,
        report: &CallbackRequest,
        idempotency_key: Option<&str>,
    ) -> Result<ExecutionView, ClientError> {
        let path = format!("/api/v1/executions/{execution_id}/callback");
        self.call(Method::POST, &path, Some(report), idempotency_key).await
    }

    /// A task's statistics (24 h, 7 d, 90 d, daily trend, health score); by id or name.
    pub async fn task_stats(&self, id_or_name: &str, consistency: Consistency) -> Result<TaskStatsView, ClientError> {
        let path =
            format!("/api/v1/tasks/{}/stats?consistency={}", encode_segment(id_or_name), consistency_str(consistency));
        self.call(Method::GET, &path, None::<&()>, None).await
    }

    /// Registers (or re-registers, by `instance_id`) an executor, upserting and binding its tasks.
    pub async fn register_executor(
        &self,
        input: &RegisterRequest,
        idempotency_key: Option<&str>,
    ) -> Result<RegisteredView, ClientError> {
        self.call(Method::POST, "/api/v1/executors/register", Some(input), idempotency_key).await
    }

    /// Executors in id order; `name` keeps one group.
    pub async fn list_executors(
        &self,
        name: Option<&str>,
        page: u64,
        page_size: u64,
        consistency: Consistency,
    ) -> Result<Page<ExecutorView>, ClientError> {
        let mut path =
            format!("/api/v1/executors?page={page}&page_size={page_size}&consistency={}", consistency_str(consistency));
        if let Some(n) = name {
            path.push_str(&format!("&name={}", encode_segment(n)));
        }
        self.call(Method::GET, &path, None::<&()>, None).await
    }

    /// One executor, by id or `instance_id`.
    pub async fn get_executor(
        &self,
        id_or_instance: &str,
        consistency: Consistency,
    ) -> Result<ExecutorView, ClientError> {
        let path = format!(
            "/api/v1/executors/{}?consistency={}",
            encode_segment(id_or_instance),
            consistency_str(consistency)
        );
        self.call(Method::GET, &path, None::<&()>, None).await
    }

    /// Sets an executor's operator status (`online` instances receive work), with a reason.
    pub async fn set_executor_status(
        &self,
        id_or_instance: &str,
        status: ExecutorStatus,
        reason: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<ExecutorView, ClientError> {
        let input = ExecutorStatusInput { status: status.as_str().to_string(), reason: reason.map(String::from) };
        let path = format!("/api/v1/executors/{}/status", encode_segment(id_or_instance));
        self.call(Method::PUT, &path, Some(&input), idempotency_key).await
    }

    /// Deregisters an executor; answers with the record as it was.
    pub async fn remove_executor(
        &self,
        id_or_instance: &str,
        idempotency_key: Option<&str>,
    ) -> Result<ExecutorView, ClientError> {
        let path = format!("/api/v1/executors/{}", encode_segment(id_or_instance));
        self.call(Method::DELETE, &path, None::<&()>, idempotency_key).await
    }

    pub async fn scheduler_status(&self) -> Result<SchedulerStatusView, ClientError> {
        self.call(Method::GET, "/api/v1/scheduler/status", None::<&()>, None).await
    }

    pub async fn cluster(&self) -> Result<ClusterView, ClientError> {
        self.call(Method::GET, "/api/v1/cluster", None::<&()>, None).await
    }

    pub async fn digest(&self) -> Result<DigestView, ClientError> {
        self.call(Method::GET, "/api/v1/cluster/digest", None::<&()>, None).await
    }

    pub async fn add_node(&self, input: &AddNodeInput) -> Result<MembershipChangeView, ClientError> {
        self.call(Method::POST, "/api/v1/cluster/nodes", Some(input), None).await
    }

    pub async fn promote_node(&self, id: u64) -> Result<MembershipChangeView, ClientError> {
        self.call(Method::POST, &format!("/api/v1/cluster/nodes/{id}/promote"), None::<&()>, None).await
    }

    pub async fn remove_node(&self, id: u64) -> Result<MembershipChangeView, ClientError> {
        self.call(Method::DELETE, &format!("/api/v1/cluster/nodes/{id}"), None::<&()>, None).await
    }

    pub async fn create_token(&self, input: &TokenInput) -> Result<CreatedTokenView, ClientError> {
        self.call(Method::POST, "/api/v1/tokens", Some(input), None).await
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenView>, ClientError> {
        self.call(Method::GET, "/api/v1/tokens", None::<&()>, None).await
    }

    pub async fn revoke_token(&self, name: &str) -> Result<TokenView, ClientError> {
        self.call(Method::DELETE, &format!("/api/v1/tokens/{}", encode_segment(name)), None::<&()>, None).await
    }

    pub async fn audit(&self, page: u64, page_size: u64) -> Result<Page<AuditView>, ClientError> {
        self.call(Method::GET, &format!("/api/v1/audit?page={page}&page_size={page_size}"), None::<&()>, None).await
    }

    pub async fn notifications(&self) -> Result<NotificationsView, ClientError> {
        self.call(Method::GET, "/api/v1/notifications", None::<&()>, None).await
    }

    pub async fn create_channel(&self, input: &ChannelInput) -> Result<ChannelView, ClientError> {
        self.call(Method::POST, "/api/v1/notifications/channels", Some(input), None).await
    }

    pub async fn list_channels(&self) -> Result<Vec<ChannelView>, ClientError> {
        self.call(Method::GET, "/api/v1/notifications/channels", None::<&()>, None).await
    }

    pub async fn update_channel(&self, name: &str, input: &ChannelInput) -> Result<ChannelView, ClientError> {
        let path = format!("/api/v1/notifications/channels/{}", encode_segment(name));
        self.call(Method::PUT, &path, Some(input), None).await
    }

    pub async fn delete_channel(&self, name: &str) -> Result<ChannelView, ClientError> {
        let path = format!("/api/v1/notifications/channels/{}", encode_segment(name));
        self.call(Method::DELETE, &path, None::<&()>, None).await
    }

    pub async fn create_rule(&self, input: &RuleInput) -> Result<RuleView, ClientError> {
        self.call(Method::POST, "/api/v1/notifications/rules", Some(input), None).await
    }

    pub async fn list_rules(&self) -> Result<Vec<RuleView>, ClientError> {
        self.call(Method::GET, "/api/v1/notifications/rules", None::<&()>, None).await
    }

    pub async fn delete_rule(&self, id: u64) -> Result<RuleView, ClientError> {
        self.call(Method::DELETE, &format!("/api/v1/notifications/rules/{id}"), None::<&()>, None).await
    }
}

fn consistency_str(c: Consistency) -> &'static str {
    match c {
        Consistency::Linearizable => "linearizable",
        Consistency::Local => "local",
    }
}

/// How long a backup may take to arrive before the client gives up.
pub const BACKUP_TIME_MAX: Duration = Duration::from_secs(3_600);

/// Receives a backup's body into `out` through a checking reader on a thread of its own.
async fn receive_backup<W: std::io::Write + Send + 'static>(
    mut resp: reqwest::Response,
    out: W,
) -> Result<(BackupSummary, W), ClientError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let check = tokio::task::spawn_blocking(move || {
        let mut tee = Tee { rx, chunk: bytes::Bytes::new(), out };
        let summary = read_backup(&mut tee, |_, _| Ok(()));
        summary.map(|s| (s, tee.out))
    });
    let mut cut = None;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if tx.send(chunk).await.is_err() {
                    break; // the check already failed; its error says why
                }
            }
            Ok(None) => break,
            Err(e) => {
                cut = Some(e.to_string());
                break;
            }
        }
    }
    drop(tx);
    let checked = check.await.map_err(|e| ClientError::Transport(e.to_string()))?;
    match (cut, checked) {
        (Some(e), _) => Err(ClientError::Transport(format!("the backup stream was cut: {e}"))),
        (None, Ok(done)) => Ok(done),
        (None, Err(e)) => Err(ClientError::Decode(format!("the backup does not check out: {e}"))),
    }
}

/// A reader over the body's chunks that copies each chunk into `out` as it arrives, whole (one
/// write per chunk of up to 256 KiB: the check reads a few bytes at a time).
struct Tee<W> {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    chunk: bytes::Bytes,
    out: W,
}

impl<W: std::io::Write> std::io::Read for Tee<W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.out.write_all(&c)?;
                    self.chunk = c;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
