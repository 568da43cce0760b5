//! What the core tells an observer as it works (a run dispatched, an epoch stored, an attempt
//! ended, a cluster poll failed): a small typed handle given at construction, so the Prometheus
//! side (`crate::metrics`) counts events without the core knowing about it, and tests of the
//! core pass nothing ([`NoRecorder`]).

use std::time::Duration;

/// Why a worker's attempt ended, as the core distinguishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitCause {
    /// The worker finished the run.
    Succeeded,
    /// The worker reported a failure, or its process exited with an error status.
    Failed,
    /// Its process was killed by a signal (not one the daemon sent for a cancellation).
    Killed,
    /// It ran out of GPU memory (the worker's flag, its error text or stderr tail).
    Oom,
    /// No heartbeat or report for `heartbeat_timeout_ms`.
    LostHeartbeat,
    /// Its run was cancelled while it ran.
    Cancelled,
}

impl ExitCause {
    /// Every cause, in the order metrics list them.
    pub const ALL: [Self; 6] = [
        Self::Succeeded,
        Self::Failed,
        Self::Killed,
        Self::Oom,
        Self::LostHeartbeat,
        Self::Cancelled,
    ];

    /// The cause's label value (`cause="lost_heartbeat"`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Killed => "killed",
            Self::Oom => "oom",
            Self::LostHeartbeat => "lost_heartbeat",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Receives the core's events. Every method is called synchronously on the caller's thread
/// (often with the core's write lock held), so an implementation only updates counters: no
/// I/O, no locks that I/O holds.
pub trait Recorder: Send + Sync {
    /// A queued run started its first attempt `waited` after its submission.
    fn dispatched(&self, waited: Duration);
    /// One reported epoch was stored (metric and event, durably) in `took`.
    fn epoch_stored(&self, took: Duration);
    /// A running attempt ended for `cause`.
    fn attempt_ended(&self, cause: ExitCause);
    /// One poll of the cluster scheduler (Slurm's `squeue`) failed.
    fn cluster_poll_failed(&self);
}

/// A recorder that keeps nothing: the default, and what tests of the core use.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRecorder;

impl Recorder for NoRecorder {
    fn dispatched(&self, _waited: Duration) {}
    fn epoch_stored(&self, _took: Duration) {}
    fn attempt_ended(&self, _cause: ExitCause) {}
    fn cluster_poll_failed(&self) {}
}
