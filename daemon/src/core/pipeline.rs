//! Pipelines: a run that depends on another (a decoupled method's stage 2 on its stage 1) waits
//! for it (the scheduler's `ready`), starts from its final checkpoint (`attempts`), and ends
//! with it when it fails or is cancelled, with the reason, recursively.

use super::daemon::state_event;
use super::{Daemon, Result};
use crate::model::{RunId, RunState};
use crate::store::{RunFilter, WriteOp};

impl Daemon {
    /// Ends the unfinished runs that depend on `id` (which just became `to`, failed or
    /// cancelled), and theirs in turn. Called under the write lock.
    pub(super) fn end_dependents(&self, id: RunId, to: RunState) -> Result<()> {
        let now = self.clock.now();
        let mut stack = vec![id];
        while let Some(parent) = stack.pop() {
            let waiting = self.store.list_runs(&RunFilter {
                state: Some(RunState::Queued),
                ..RunFilter::default()
            })?;
            let mut ops = Vec::new();
            for mut run in waiting.into_iter().filter(|r| r.depends_on == Some(parent)) {
                let why = match to {
                    RunState::Cancelled => {
                        format!("the run it depends on, {parent}, was cancelled")
                    }
                    _ => format!("the run it depends on, {parent}, failed"),
                };
                run.state = to;
                run.finished_at = Some(now);
                run.pending_reason = None;
                if to == RunState::Failed {
                    run.error = Some(why.clone());
                }
                stack.push(run.id);
                ops.push(WriteOp::AppendEvent(
                    run.id,
                    state_event(now, Some(RunState::Queued), to, Some(why)),
                ));
                ops.push(WriteOp::PutRun(run));
            }
            if !ops.is_empty() {
                self.commit(&ops)?;
            }
        }
        Ok(())
    }
}
