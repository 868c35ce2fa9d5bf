//! `cronraft-raft`: the replicated state of cronraft.
//!
//! # Layout
//!
//! - [`model`]: what is replicated (tasks, node addresses).
//! - [`address`]: `host:port` node addresses (IPs or host names, resolved at connect time).
//! - [`command`]: the write vocabulary — every change is one [`command::Request`] in the log.
//! - [`state`]: the deterministic `apply` and read-only queries ([`state::StateView`]).
//! - [`spec`]: the rules a task spec must satisfy, and partial updates (`PUT`).
//! - [`schedule`]: the cron dialect and time-zone rules, shared by apply, the scheduler and the API.
//! - [`store`]: the sled log store and state machine, with fsync-backed durability and snapshots.
//! - [`network`]: Raft RPC over HTTP (client and server side).
//! - [`outbound`]: every outbound HTTP client (peers, executors, agents) and capped body reads.
//! - [`cluster_secret`]: the shared secret nodes prove membership with (Raft RPC, internal calls).
//! - [`membership`]: add, promote and remove nodes with typed errors.
//! - [`unsafe_modes`]: the chaos harness's test-only switches (cargo feature `unsafe-modes`).
//!
//! This crate knows nothing of user-facing HTTP, of clocks or of executors: time and ids arrive
//! inside commands.

pub mod address;
pub mod cluster_identity;
pub mod cluster_secret;
pub mod codec;
pub mod command;
pub mod error;
pub mod membership;
pub mod model;
pub mod network;
pub mod notify;
pub mod outbound;
pub mod schedule;
pub mod spec;
pub mod state;
pub mod store;
mod txn;
pub mod unsafe_modes;

pub use command::{Command, Rejection, Request, Response};
pub use model::NodeInfo;

/// Node ids are small integers chosen by the operator (`--node-id`).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The openraft type configuration of cronraft.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = crate::store::SnapshotBody,
);

/// The Raft handle of a cronraft node.
pub type Raft = openraft::Raft<TypeConfig>;
