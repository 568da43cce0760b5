//! Leader/follower grouping without a thread of its own, shared by the group commits of
//! reported epochs (`sled_ingest`) and of submissions (`caudad`'s core): callers queue their
//! items; one of them leads, takes every queued item, has them applied together and answers
//! each caller; when it hands the lead on, the first caller still waiting leads the next group.
//!
//! Each waiting caller sleeps on a condition of its own and is woken once, with its outcome or
//! its turn to lead. One condition for everyone woke all 64 blocking threads at each step of
//! each group, on two cores. A leader that leaves by a panic answers what it took with the
//! queue's `abandoned` outcome and still hands the lead on, so nobody waits forever.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Where one waiting caller stands.
enum Turn<O> {
    Waiting,
    Lead,
    Done(O),
}

/// A waiting caller's turn and the condition it sleeps on.
struct Slot<O> {
    turn: Mutex<Turn<O>>,
    changed: Condvar,
}

impl<O> Slot<O> {
    fn set(&self, turn: Turn<O>) {
        *self.turn.lock().unwrap_or_else(|p| p.into_inner()) = turn;
        self.changed.notify_one();
    }

    /// Sleeps until the caller leads (`None`) or has its outcome.
    fn wait(&self) -> Option<O> {
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

/// The items waiting for the next group, and whether someone leads.
struct Queue<T, O> {
    waiting: Vec<(Arc<Slot<O>>, T)>,
    leading: bool,
}

/// A queue of callers grouped by a leader among them.
pub struct Handoff<T, O> {
    queue: Mutex<Queue<T, O>>,
    /// The outcome of an item whose leader left without answering it (a panic).
    abandoned: fn() -> O,
}

impl<T, O> std::fmt::Debug for Handoff<T, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff").finish_non_exhaustive()
    }
}

/// What joining the queue gave: the outcome another leader applied, or the lead.
pub enum Joined<'a, T, O> {
    Answered(O),
    Lead(Lead<'a, T, O>),
}

impl<T, O> Handoff<T, O> {
    /// An empty queue; `abandoned` is what a caller gets when its group's leader panicked.
    pub fn new(abandoned: fn() -> O) -> Self {
        Self {
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                leading: false,
            }),
            abandoned,
        }
    }

    /// The queue; it holds plain data, so a poisoned lock is still consistent.
    fn lock(&self) -> MutexGuard<'_, Queue<T, O>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many items wait for a leader to take them.
    pub fn queued(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Queues `item`; returns once another leader answered it, or when this caller leads (its
    /// item still queued, so in the group it takes).
    pub fn join(&self, item: T) -> Joined<'_, T, O> {
        let slot = Arc::new(Slot {
            turn: Mutex::new(Turn::Waiting),
            changed: Condvar::new(),
        });
        let lead_now = {
            let mut q = self.lock();
            q.waiting.push((slot.clone(), item));
            !std::mem::replace(&mut q.leading, true)
        };
        if !lead_now && let Some(outcome) = slot.wait() {
            return Joined::Answered(outcome);
        }
        Joined::Lead(Lead {
            handoff: self,
            own: slot,
            handed: false,
        })
    }

    /// Ends a lead: the first caller still waiting leads next, or nobody leads.
    fn hand_on(&self) {
        let mut q = self.lock();
        match q.waiting.first() {
            Some((slot, _)) => slot.set(Turn::Lead),
            None => q.leading = false,
        }
    }
}

/// The lead of one group. Dropping it hands the lead on (if `hand_on` did not already).
pub struct Lead<'a, T, O> {
    handoff: &'a Handoff<T, O>,
    own: Arc<Slot<O>>,
    handed: bool,
}

impl<'a, T, O> Lead<'a, T, O> {
    /// Takes every queued item (the leader's own included), in arrival order.
    pub fn take(&mut self) -> (Vec<T>, Taken<'a, T, O>) {
        let waiting = std::mem::take(&mut self.handoff.lock().waiting);
        let (slots, items): (Vec<_>, Vec<_>) = waiting.into_iter().unzip();
        let own = slots.iter().position(|s| Arc::ptr_eq(s, &self.own));
        let taken = Taken {
            handoff: self.handoff,
            slots: slots.into_iter().map(Some).collect(),
            own,
        };
        (items, taken)
    }

    /// Lets the next group start (its items may be applied while this one is still being
    /// answered: the ingestion path flushes after this).
    pub fn hand_on(&mut self) {
        if !std::mem::replace(&mut self.handed, true) {
            self.handoff.hand_on();
        }
    }
}

impl<T, O> Drop for Lead<'_, T, O> {
    fn drop(&mut self) {
        self.hand_on();
    }
}

/// The callers of a group, to be answered. Dropping it answers the rest with `abandoned`.
pub struct Taken<'a, T, O> {
    handoff: &'a Handoff<T, O>,
    slots: Vec<Option<Arc<Slot<O>>>>,
    /// The leader's own place in the group.
    own: Option<usize>,
}

impl<T, O> Taken<'_, T, O> {
    /// How many items the group holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the group is empty (never, for a group a leader took).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Answers every caller, `outcomes[i]` to the i-th item, and returns the leader's own.
    /// An item without an outcome (a short vector) gets `abandoned`.
    pub fn answer(mut self, outcomes: impl IntoIterator<Item = O>) -> O {
        let mut own = None;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            if Some(i) == self.own {
                own = Some(outcome);
            } else if let Some(slot) = self.slots.get_mut(i).and_then(Option::take) {
                slot.set(Turn::Done(outcome));
            }
        }
        if let Some(i) = self.own {
            self.slots[i] = None;
        }
        own.unwrap_or_else(self.handoff.abandoned)
    }
}

impl<T, O> Drop for Taken<'_, T, O> {
    fn drop(&mut self) {
        for slot in self.slots.iter_mut().filter_map(Option::take) {
            slot.set(Turn::Done((self.handoff.abandoned)()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many callers at once: each gets its own item's outcome, groups form, nobody is lost.
    #[test]
    fn every_caller_gets_its_own_outcome() {
        let h: Handoff<u64, Option<u64>> = Handoff::new(|| None);
        let groups = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..16u64 {
                let (h, groups) = (&h, &groups);
                s.spawn(move || {
                    for i in 0..200u64 {
                        let item = t * 1000 + i;
                        let got = match h.join(item) {
                            Joined::Answered(o) => o,
                            Joined::Lead(mut lead) => {
                                let (items, taken) = lead.take();
                                assert_eq!(items.len(), taken.len());
                                groups.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                lead.hand_on();
                                taken.answer(items.into_iter().map(|x| Some(x * 2)))
                            }
                        };
                        assert_eq!(got, Some(item * 2));
                    }
                });
            }
        });
        let groups = groups.into_inner();
        assert!((1..=3200).contains(&groups), "{groups} groups");
    }

    /// A leader that panics answers its group with `abandoned` and hands the lead on.
    #[test]
    fn a_panicking_leader_abandons_its_group_and_hands_on() {
        let h: Handoff<u64, Option<u64>> = Handoff::new(|| None);
        let result = std::thread::scope(|s| {
            s.spawn(|| match h.join(1) {
                Joined::Lead(mut lead) => {
                    let _taken = lead.take();
                    panic!("the leader fails");
                }
                Joined::Answered(_) => unreachable!("alone, it leads"),
            })
            .join()
        });
        assert!(result.is_err());
        // The lead was handed on: the next caller leads at once.
        match h.join(2) {
            Joined::Lead(mut lead) => {
                let (items, taken) = lead.take();
                assert_eq!(items, [2]);
                assert_eq!(taken.answer([Some(4)]), Some(4));
            }
            Joined::Answered(o) => panic!("answered {o:?} without a leader"),
        }
        // A short answer abandons the rest.
        let (items, taken) = match h.join(3) {
            Joined::Lead(mut lead) => lead.take(),
            Joined::Answered(_) => unreachable!(),
        };
        assert_eq!(items, [3]);
        assert_eq!(taken.answer(std::iter::empty()), None);
    }
}
