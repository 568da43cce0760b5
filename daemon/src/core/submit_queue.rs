//! The queue submissions wait in for their group (`submit_group`): leader/follower, with no
//! thread of its own. A submission queues itself; when no group is being applied it leads: it
//! takes the write lock, takes every queued submission (its own included), has them applied and
//! answers each. At the end of a group the first submission still waiting is told to lead the
//! next. Each waiting submission sleeps on a condition of its own and is woken once, with its
//! outcome or its turn to lead, instead of every waiting thread at the end of every group (64
//! blocking threads on two cores). A leader that leaves by a panic answers what it took with an
//! error and still hands the lead on.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::daemon::Pending;
use super::submit_group::Prepared;
use super::{CoreError, Daemon, Result, Submitted};

/// What a submission gets from its group: what it created, applied but not yet durable.
pub(super) type Outcome = Result<(Submitted, Pending)>;

/// Where one waiting submission stands; each has its own, so that the end of a group wakes
/// each of its submissions once, not every waiting thread each time (64 blocking threads on
/// two cores, all woken by every group, cost more than the groups themselves).
enum Turn {
    Waiting,
    /// It leads the next group.
    Lead,
    Done(Outcome),
}

/// A waiting submission's turn and the condition it sleeps on.
struct Slot {
    turn: Mutex<Turn>,
    changed: Condvar,
}

impl Slot {
    fn set(&self, turn: Turn) {
        *self.turn.lock().unwrap_or_else(|p| p.into_inner()) = turn;
        self.changed.notify_one();
    }

    /// Sleeps until the submission leads a group (`None`) or has its outcome.
    fn wait(&self) -> Option<Outcome> {
        let mut turn = self.turn.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match std::mem::replace(&mut *turn, Turn::Waiting) {
                Turn::Waiting => {
                    turn = self.changed.wait(turn).unwrap_or_else(|p| p.into_inner());
                }
                Turn::Lead => return None,
                Turn::Done(outcome) => return Some(outcome),
            }
        }
    }
}

/// The submissions waiting for the next group, and whether a group is being applied.
#[derive(Default)]
struct Queue {
    waiting: Vec<(Arc<Slot>, Prepared)>,
    leading: bool,
}

/// The grouping state of one daemon.
#[derive(Default)]
pub(super) struct SubmitQueue {
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for SubmitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmitQueue").finish_non_exhaustive()
    }
}

impl SubmitQueue {
    /// The queue; it holds plain data, so a poisoned lock is still consistent.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends a group: the next waiting submission leads the next one, or nobody leads.
    fn hand_on(&self) {
        let mut q = self.lock();
        match q.waiting.first() {
            Some((slot, _)) => slot.set(Turn::Lead),
            None => q.leading = false,
        }
    }
}

/// Answers the submissions a leader took and hands the lead on when it leaves, even by a
/// panic: a submission it did not answer gets an error instead of waiting forever.
struct Lead<'a> {
    queue: &'a SubmitQueue,
    taken: Vec<Arc<Slot>>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        for slot in self.taken.drain(..) {
            slot.set(Turn::Done(Err(CoreError::Internal(
                "the submission's group ended without an outcome for it".into(),
            ))));
        }
        self.queue.hand_on();
    }
}

impl Daemon {
    /// Queues a prepared submission for the next group and returns once its group was applied:
    /// what it created and the pending write to settle.
    pub(super) fn submit_grouped(&self, prepared: Prepared) -> Outcome {
        let queue = &self.submissions;
        let slot = Arc::new(Slot {
            turn: Mutex::new(Turn::Waiting),
            changed: Condvar::new(),
        });
        let lead_now = {
            let mut q = queue.lock();
            q.waiting.push((slot.clone(), prepared));
            self.submits_waiting.fetch_add(1, Ordering::SeqCst);
            !std::mem::replace(&mut q.leading, true)
        };
        if !lead_now && let Some(outcome) = slot.wait() {
            return outcome;
        }
        // This submission leads: its own is still queued, so it is in the group it applies.
        let mut lead = Lead {
            queue,
            taken: Vec::new(),
        };
        // Every submission queued while the lock was awaited joins this group.
        let guard = self.lock();
        let group = std::mem::take(&mut queue.lock().waiting);
        self.submits_waiting
            .fetch_sub(group.len(), Ordering::SeqCst);
        let (slots, group): (Vec<Arc<Slot>>, Vec<Prepared>) = group.into_iter().unzip();
        lead.taken.clone_from(&slots);
        let outcomes = match guard {
            Ok(guard) => {
                // Declared after the lock's guard, so dropped first, still under the lock.
                let owed = OwedPass(self);
                let outcomes = self.apply_group(group);
                drop(owed);
                drop(guard);
                outcomes
            }
            Err(_) => (0..slots.len())
                .map(|i| {
                    (
                        i,
                        Err(CoreError::Internal(
                            "the daemon's write lock was poisoned".into(),
                        )),
                    )
                })
                .collect(),
        };
        let mut own = None;
        let mut answered = vec![false; slots.len()];
        for (i, outcome) in outcomes {
            let Some(s) = slots.get(i) else { continue };
            answered[i] = true;
            if Arc::ptr_eq(s, &slot) {
                own = Some(outcome);
            } else {
                s.set(Turn::Done(outcome));
            }
        }
        lead.taken = slots
            .into_iter()
            .zip(answered)
            .filter(|(s, answered)| !answered && !Arc::ptr_eq(s, &slot))
            .map(|(s, _)| s)
            .collect();
        // Hands the lead on; any taken submission left unanswered gets an error.
        drop(lead);
        own.unwrap_or_else(|| {
            Err(CoreError::Internal(
                "the submission's group ended without an outcome for it".into(),
            ))
        })
    }
}

/// A scheduling pass a group left to the next one in a burst (`Daemon::schedule_owed`): when a
/// group ends, with no submission waiting, it runs the pass if one is still owed, even when the
/// group failed, so no applied run waits for the ticker.
struct OwedPass<'a>(&'a Daemon);

impl Drop for OwedPass<'_> {
    fn drop(&mut self) {
        let d = self.0;
        if d.submits_waiting.load(Ordering::SeqCst) == 0
            && d.schedule_owed.load(Ordering::SeqCst)
            && let Err(e) = d.schedule_locked()
        {
            tracing::error!(error = %e, "the scheduling pass a submission owed failed");
        }
    }
}
