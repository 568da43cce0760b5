//! Runs of other engines. Every run is stored with the engine fingerprint it was resolved for
//! (`cauda_plugins::train::engine_fingerprint`), which is part of its config hash: after an
//! upgrade that changes the fingerprint, no stored run is reused for a new submission. Finished
//! runs stay as they are (reports mark them as older). Unfinished ones cannot go on: this
//! daemon's workers train only their own engine's runs and refuse a checkpoint of another. They
//! fail at start-up with the reason (resubmitting the spec trains them again with this engine),
//! rather than restarting in place: a restart would have to drop their stored epochs and
//! checkpoints, and a decoupled stage 2 would still start from an older engine's stage 1.

use cauda_plugins::train::engine_fingerprint;

use super::daemon::state_event;
use super::{Daemon, Result};
use crate::model::{RunId, RunRecord, RunState};
use crate::store::{RunFilter, WriteOp};

/// Whether `engine` (a run's fingerprint) is this daemon's.
pub fn is_current_engine(engine: &str) -> bool {
    engine == engine_fingerprint()
}

/// An engine fingerprint in words: empty means a run stored before fingerprints.
pub fn engine_label(engine: &str) -> &str {
    if engine.is_empty() {
        "an engine before fingerprints"
    } else {
        engine
    }
}

impl Daemon {
    /// Fails the queued runs resolved for another engine (and their dependents) with the reason.
    /// Called at start-up under the write lock, after running runs went back to the queue.
    pub(super) fn fail_other_engines(&self) -> Result<Vec<RunId>> {
        let queued = self.store.list_runs(&RunFilter {
            state: Some(RunState::Queued),
            ..RunFilter::default()
        })?;
        let now = self.clock.now();
        let current = engine_fingerprint();
        let mut ops = Vec::new();
        let mut failed = Vec::new();
        for mut run in queued
            .into_iter()
            .filter(|r: &RunRecord| !is_current_engine(&r.engine))
        {
            let why = format!(
                "planned for {}, but this daemon trains with {current}: resubmit the experiment to train it with this engine",
                engine_label(&run.engine)
            );
            run.state = RunState::Failed;
            run.finished_at = Some(now);
            run.pending_reason = None;
            run.grants.clear();
            run.error = Some(why.clone());
            failed.push(run.id);
            ops.push(WriteOp::AppendEvent(
                run.id,
                state_event(now, Some(RunState::Queued), RunState::Failed, Some(why)),
            ));
            ops.push(WriteOp::PutRun(run));
        }
        if ops.is_empty() {
            return Ok(failed);
        }
        self.commit(&ops)?;
        tracing::warn!(runs = failed.len(), engine = %current, "failed the queued runs of another engine");
        for &id in &failed {
            self.end_dependents(id, RunState::Failed)?;
        }
        Ok(failed)
    }
}
