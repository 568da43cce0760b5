//! The queue submissions wait in for their group (`submit_group`): `cauda-store`'s `handoff`
//! (leader/follower, with no thread of its own, each waiting submission woken once). The
//! leader takes the write lock, takes every queued submission (its own included), has them
//! applied as one group and answers each; the first submission still waiting leads the next.

use std::sync::atomic::Ordering;

use super::submit_group::Prepared;
use super::{CoreError, Daemon};
use crate::store::handoff::{Handoff, Joined};

/// What a submission gets from its group: what it created, applied but not yet durable.
pub(super) type Outcome = super::Result<(super::Submitted, super::daemon::Pending)>;

/// The submissions waiting for their group.
pub(super) struct SubmitQueue(Handoff<Prepared, Outcome>);

impl SubmitQueue {
    /// How many submissions wait for a group to take them.
    pub(super) fn queued(&self) -> usize {
        self.0.queued()
    }
}

impl Default for SubmitQueue {
    fn default() -> Self {
        Self(Handoff::new(|| {
            Err(CoreError::Internal(
                "the submission's group ended without an outcome for it".into(),
            ))
        }))
    }
}

impl std::fmt::Debug for SubmitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmitQueue").finish_non_exhaustive()
    }
}

impl Daemon {
    /// Queues a prepared submission for the next group and returns once its group was applied:
    /// what it created and the pending write to settle.
    pub(super) fn submit_grouped(&self, prepared: Prepared) -> Outcome {
        let mut lead = match self.submissions.0.join(prepared) {
            Joined::Answered(outcome) => return outcome,
            Joined::Lead(lead) => lead,
        };
        // Every submission queued while the lock was awaited joins this group.
        let guard = self.lock();
        let (group, taken) = lead.take();
        let n = group.len();
        let mut outcomes: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
        match guard {
            Ok(guard) => {
                // Declared after the lock's guard, so dropped first, still under the lock.
                let owed = OwedPass(self);
                for (i, outcome) in self.apply_group(group) {
                    if let Some(slot) = outcomes.get_mut(i) {
                        *slot = Some(outcome);
                    }
                }
                drop(owed);
                drop(guard);
            }
            Err(_) => {
                for slot in &mut outcomes {
                    *slot = Some(Err(CoreError::Internal(
                        "the daemon's write lock was poisoned".into(),
                    )));
                }
            }
        }
        lead.hand_on();
        taken.answer(outcomes.into_iter().map(|o| {
            o.unwrap_or_else(|| {
                Err(CoreError::Internal(
                    "the submission's group gave it no outcome".into(),
                ))
            })
        }))
    }
}

/// A scheduling pass a group left to the next one in a burst (`Daemon::schedule_owed`): when a
/// group ends, with no submission waiting, it runs the pass if one is still owed, even when the
/// group failed, so no applied run waits for the ticker.
struct OwedPass<'a>(&'a Daemon);

impl Drop for OwedPass<'_> {
    fn drop(&mut self) {
        let d = self.0;
        if d.submissions.queued() == 0
            && d.schedule_owed.load(Ordering::SeqCst)
            && let Err(e) = d.schedule_locked()
        {
            tracing::error!(error = %e, "the scheduling pass a submission owed failed");
        }
    }
}
