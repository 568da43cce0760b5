//! The daemon core: accepts specs, keeps runs in the store, asks the scheduling policy what to
//! start and hands starts to an executor. It knows no protobuf; `grpc` adapts it to the wire.
//! Every state change is committed to the store (write-ahead) before anyone acts on it.

mod attempts;
#[cfg(test)]
mod attempts_test;
mod batch;
mod cancel;
mod checkpoints;
mod command_policy;
mod daemon;
mod delete;
mod endings;
mod engines;
mod error;
mod export;
mod ingest;
pub mod oom;
mod paths;
mod peak;
mod pipeline;
mod plan;
mod query;
mod quota;
mod recorder;
mod recovery;
mod report;
mod schedule;
mod snapshot;
mod submit;
mod submit_group;
#[cfg(test)]
mod submit_group_test;
mod submit_queue;
#[cfg(test)]
mod tests;

pub use attempts::WorkerStart;
pub use cancel::{CancelOutcome, CancelTarget};
pub use command_policy::CommandPolicy;
pub use daemon::{Daemon, DaemonSettings, Submitted};
pub use delete::DeleteOutcome;
pub use endings::{Ending, ProcessExit, STDERR_TAIL_BYTES};
pub use engines::engine_label;
pub use error::{CoreError, Result};
pub use export::{ExportError, Exported};
pub use ingest::ReportedEpoch;
pub use paths::{DATA_ROOTS_ENV, DataRoots, PathError};
pub use peak::{PEAK_MARGIN_MIN_MB, with_margin};
pub use query::{CheckpointChoice, DeviceView, PlacedRun};
pub use recorder::{ExitCause, NoRecorder, Recorder};
pub use report::{Report, ReportRow};
pub use snapshot::{RUN_STATES, Snapshot};

use crate::model::{Millis, RunId, RunRecord};
use crate::store::Event;

/// The time source of the core; tests inject a fixed one.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// Acts on the scheduler's decisions (STYLE.md: policies decide, executors act). Called only
/// after the state change is durable; a launch must be idempotent per (run, attempt).
pub trait Executor: Send + Sync {
    /// Start `run`'s current attempt on its grants.
    fn launch(&self, run: &RunRecord);
    /// Stop a run that was running and is now cancelled (its devices are already free).
    fn cancel(&self, run: &RunRecord);
    /// Who places its runs on devices: this machine's inventory (the default), or a cluster's
    /// scheduler (Slurm), which the scheduling policy then dispatches every ready run to at once
    /// with no local device grants (`scheduler::Placement`).
    fn placement(&self) -> crate::scheduler::Placement {
        crate::scheduler::Placement::Local
    }
    /// The lines `run`'s current attempt has printed that the executor has not yet handed to
    /// the run's log (a cluster job's output file, read only at each poll). The core stores
    /// them when the attempt finishes, before its end, so a watcher that stops at the end
    /// has seen them.
    fn unread_output(&self, run: RunId) -> Vec<String> {
        let _ = run;
        Vec::new()
    }
}

/// An executor that does nothing: runs stay Running until cancelled (tests, and until the
/// process executor lands).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopExecutor;

impl Executor for NoopExecutor {
    fn launch(&self, run: &RunRecord) {
        tracing::debug!(run_id = %run.id, "noop executor: launch");
    }
    fn cancel(&self, run: &RunRecord) {
        tracing::debug!(run_id = %run.id, "noop executor: cancel");
    }
}

/// One stored event as broadcast to live watchers: the run, its store sequence number (from 0)
/// and the event.
pub type LiveEvent = (RunId, u64, Event);
