//! What the API reads of the leader's scheduler: a small trait the scheduler (crate `cronraft`)
//! implements, and the [`LagSummary`] and [`MinuteLag`] figures `/scheduler/status` serves. The
//! API crate does not know how the scheduler measures; it asks for the figures and for its
//! Prometheus families, which `/metrics` encodes as they are.

/// Percentiles of the recent fire lags.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct LagSummary {
    pub samples: u64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

/// One minute of the leader's fires (the wall-clock minute their entries were committed in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MinuteLag {
    /// The minute's start, UTC ms.
    pub minute_ms: i64,
    /// Slots in the fire entries committed in the minute.
    pub fires: u64,
    /// Their fire lag's percentiles (0 without fires).
    pub p50_ms: u64,
    pub p99_ms: u64,
    /// Slots those entries recorded `missed`.
    pub missed: u64,
}

/// The scheduler's figures as the API reads them.
pub trait SchedulerReport: Send + Sync {
    /// Whether this node's scheduler runs (it leads).
    fn running(&self) -> bool;
    /// Active tasks with a timer on this node (0 unless it leads).
    fn timers(&self) -> u64;
    /// Recent fire lag: commit of the fire − the slot.
    fn summary(&self) -> LagSummary;
    /// Recent applied lag: this node's apply of the fire − the slot.
    fn applied_summary(&self) -> LagSummary;
    /// The last 60 minutes that had fires or missed slots, oldest first (empty unless this node
    /// leads).
    fn history(&self) -> Vec<MinuteLag>;
    /// Encodes the scheduler's Prometheus families (a collector's part of a scrape).
    fn encode(&self, encoder: &mut prometheus_client::encoding::DescriptorEncoder<'_>) -> std::fmt::Result;
}
