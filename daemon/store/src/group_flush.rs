//! Group commit for the sled store: a write is applied (visible to reads) first and made
//! durable afterwards, and every writer that finished applying while a flush was running is
//! covered by the ONE flush that follows, instead of each paying its own fsync. Nobody is told
//! "durable" before a flush that started after its write returned: sled's log is written in
//! order, so such a flush covers that write and every earlier one.
//!
//! The protocol is leader/follower, with no thread of its own: a writer takes a `Ticket` once
//! its write is applied, then `wait` returns at once when a flush already covered the ticket,
//! waits while another writer's flush runs, or else becomes the leader: it notes the newest
//! ticket applied so far, flushes (without holding the state lock), marks that ticket durable
//! and wakes the others. A failed flush is returned to its leader; the waiters covered by it try
//! a flush of their own, so each caller sees an error from a flush it depended on, never a
//! success it did not get.

use std::sync::{Condvar, Mutex, MutexGuard};

use super::{Result, StoreError, Ticket};

/// Where the store's writes stand: tickets handed out, made durable, and whether a flush runs.
#[derive(Debug, Default)]
struct State {
    /// The newest ticket handed out (tickets count from 1).
    applied: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    /// A leader is flushing now.
    flushing: bool,
    /// Tickets up to this one, not durable, were lost when the database was reopened.
    lost: u64,
    /// Flushes run so far (for tests and the docs' figures).
    flushes: u64,
}

/// The group-commit state of one store.
#[derive(Debug, Default)]
pub(crate) struct GroupFlush {
    state: Mutex<State>,
    changed: Condvar,
}

impl GroupFlush {
    /// The state; it holds plain counters, so a poisoned lock is still consistent.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ticket for a write that has been applied (call it after the write returned).
    pub(crate) fn applied(&self) -> Ticket {
        let mut s = self.state();
        s.applied += 1;
        Ticket(s.applied)
    }

    /// The newest ticket handed out: waiting for it covers every write applied so far.
    pub(crate) fn newest(&self) -> Ticket {
        Ticket(self.state().applied)
    }

    /// How many flushes have run.
    pub(crate) fn flushes(&self) -> u64 {
        self.state().flushes
    }

    /// Marks every ticket not yet durable as lost: the database they were applied to was
    /// closed without flushing them (reopened after a full disk); their waiters get `lost`.
    pub(crate) fn discard_unflushed(&self) {
        let mut s = self.state();
        s.lost = s.applied;
        self.changed.notify_all();
    }

    /// Returns once `ticket` is durable, running `flush` as the leader of a group if needed;
    /// the error `lost` makes when the write was discarded before any flush covered it.
    pub(crate) fn wait(
        &self,
        ticket: Ticket,
        flush: impl Fn() -> Result<()>,
        lost: impl Fn() -> StoreError,
    ) -> Result<()> {
        let mut s = self.state();
        loop {
            if s.durable >= ticket.0 {
                return Ok(());
            }
            if s.lost >= ticket.0 {
                return Err(lost());
            }
            if s.flushing {
                s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            s.flushing = true;
            let target = s.applied;
            drop(s);
            let guard = Unflushing(self);
            let outcome = flush();
            std::mem::forget(guard);
            s = self.state();
            s.flushing = false;
            s.flushes += 1;
            if outcome.is_ok() {
                s.durable = s.durable.max(target);
            }
            self.changed.notify_all();
            outcome?;
        }
    }
}

/// Clears `flushing` should a leader's flush panic, so that the next writer leads instead of
/// every writer waiting forever (disarmed with `mem::forget` once the flush returned).
struct Unflushing<'a>(&'a GroupFlush);

impl Drop for Unflushing<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.flushing = false;
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    fn lost() -> StoreError {
        StoreError::Invalid {
            op: "test",
            reason: "lost".into(),
        }
    }

    #[test]
    fn a_durable_ticket_needs_no_flush_and_newer_ones_do() {
        let g = GroupFlush::default();
        let flushed = AtomicU64::new(0);
        let flush = || {
            flushed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        let (a, b) = (g.applied(), g.applied());
        assert!(a < b, "tickets are handed out in order");
        g.wait(a, flush, lost).unwrap();
        assert_eq!(flushed.load(Ordering::SeqCst), 1);
        // The flush for `a` started after `b` was applied, so it covered `b` too.
        g.wait(b, flush, lost).unwrap();
        assert_eq!(flushed.load(Ordering::SeqCst), 1);
        let c = g.applied();
        g.wait(c, flush, lost).unwrap();
        assert_eq!(flushed.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn writers_arriving_during_a_flush_share_the_next_one() {
        let g = Arc::new(GroupFlush::default());
        let flushed = Arc::new(AtomicU64::new(0));
        let slow = {
            let flushed = flushed.clone();
            move || {
                std::thread::sleep(Duration::from_millis(30));
                flushed.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        };
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let (g, slow) = (g.clone(), slow.clone());
                std::thread::spawn(move || {
                    let t = g.applied();
                    g.wait(t, slow, lost).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = flushed.load(Ordering::SeqCst);
        assert!(
            n <= 3,
            "32 writers needed {n} flushes; a group needs at most 3"
        );
        assert_eq!(g.flushes(), n);
    }

    #[test]
    fn a_failed_flush_acknowledges_nobody_and_the_next_one_does() {
        let g = GroupFlush::default();
        let t = g.applied();
        let failing = || {
            Err(StoreError::Invalid {
                op: "flush",
                reason: "injected".into(),
            })
        };
        assert!(g.wait(t, failing, lost).is_err());
        assert!(g.wait(t, failing, lost).is_err(), "still not durable");
        g.wait(t, || Ok(()), lost).unwrap();
    }

    #[test]
    fn writes_discarded_before_a_flush_are_never_acknowledged() {
        let g = GroupFlush::default();
        let (a, b) = (g.applied(), g.applied());
        g.wait(a, || Ok(()), lost).unwrap();
        let c = g.applied();
        g.discard_unflushed();
        // `a` and `b` were covered by the flush; `c` was applied after it and then lost.
        g.wait(b, || Ok(()), lost).unwrap();
        let err = g.wait(c, || Ok(()), lost).unwrap_err();
        assert!(err.to_string().contains("lost"), "{err}");
        let d = g.applied();
        g.wait(d, || Ok(()), lost).unwrap();
    }

    #[test]
    fn a_panicking_flush_does_not_stall_the_next_writer() {
        let g = Arc::new(GroupFlush::default());
        let t = g.applied();
        let panicked = {
            let g = g.clone();
            std::thread::spawn(move || g.wait(t, || panic!("injected"), lost)).join()
        };
        assert!(panicked.is_err());
        g.wait(t, || Ok(()), lost).unwrap();
    }
}
