//! The decision itself: walk the ordered queue over a ledger of free capacity, start what fits,
//! hold devices for runs that have waited too long, and give every other run its reason
//! (computed once every start and hold of the decision is counted).
//! Pure: the caller passes the time and the state in and acts on the returned [`Decision`].

use super::ledger::{Ledger, Need};
use super::order::order;
use super::quota::GpuQuota;
use super::{Decision, SchedulerInput, reason};

/// Decides which pending runs start now and on which devices, and why the others wait.
/// The rules are documented on the [`scheduler`](super) module.
pub fn decide(input: &SchedulerInput) -> Decision {
    let mut decision = Decision::default();
    let mut candidates = Vec::new();
    for run in &input.pending {
        if !run.ready {
            decision
                .reasons
                .push((run.id, reason::not_ready(run.depends_on)));
            continue;
        }
        let need = match Need::from_request(&run.request) {
            Ok(need) => need,
            Err(why) => {
                decision.reasons.push((run.id, why));
                continue;
            }
        };
        if let Some(why) = reason::impossible(&need, &input.inventory) {
            decision.reasons.push((run.id, why));
            continue;
        }
        candidates.push((run, need));
    }

    let cfg = &input.config;
    let mut ledger = Ledger::new(&input.inventory, &input.allocations);
    let mut quota = GpuQuota::new(input.gpu_quota, &input.usage);
    // Runs walked so far that did not start, per resource (GPU, CPU): the "runs ahead" count.
    let (mut waiting_gpu, mut waiting_cpu) = (0usize, 0usize);
    // With backfill off, the first run that cannot start stops every run after it.
    let mut first_blocked = None;
    // Runs that could not start: (index of their reason, id, need, runs ahead, devices held).
    let mut blocked = Vec::new();
    for (run, need) in order(candidates, &input.usage, cfg.fair_share) {
        let ahead = if need.wants_gpu() {
            &mut waiting_gpu
        } else {
            &mut waiting_cpu
        };
        if let Some(first) = first_blocked {
            decision
                .reasons
                .push((run.id, reason::strict_order(first, *ahead)));
            *ahead += 1;
            continue;
        }
        // Over its user's GPU cap: waits without blocking the runs behind it.
        if let Some(why) = quota.refuse(&run.user, &need) {
            decision.reasons.push((run.id, why));
            continue;
        }
        if let Some(slots) = ledger.place(&need, run.id) {
            quota.add(&run.user, &need);
            let grants = ledger.commit(&need, &slots);
            tracing::debug!(run_id = %run.id, ?grants, "scheduler: start");
            decision.starts.push((run.id, grants));
            continue;
        }
        let held = if !cfg.backfill {
            first_blocked = Some(run.id);
            None
        } else if input.now.saturating_sub(run.submitted_at) >= cfg.reserve_after_ms {
            ledger.hold(&need, run.id)
        } else {
            None
        };
        blocked.push((decision.reasons.len(), run.id, need, *ahead, held));
        decision.reasons.push((run.id, String::new()));
        *ahead += 1;
    }
    // Blocked runs are explained against the ledger after every start and hold of this decision,
    // so the numbers are what the user would see now.
    for (slot, id, need, ahead, held) in blocked {
        let mut why = reason::blocked(&need, &ledger, id, ahead);
        if let Some(held) = held {
            why.push_str(&reason::holding(&held));
        }
        decision.reasons[slot].1 = why;
    }
    decision
}
