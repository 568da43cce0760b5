//! The queue order the policy walks: priority first, then (with fair share) the user who is
//! using the least, then submission time and id. Separate from placement so the order can be
//! tested (and explained) on its own.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};

use cauda_model::Grant;
use cauda_model::{DeviceId, ResourceRequest};

use super::PendingRun;
use super::ledger::{Need, units_share};

/// What a user is running now: GPU-equivalents (a whole GPU 1, a share its fraction) and CPU
/// slots. Users compare by GPUs first (the scarce resource), then CPU slots.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub gpus: f64,
    pub cpu_slots: u32,
}

impl Usage {
    /// The usage a run's grants amount to.
    pub fn of_grants(grants: &[Grant]) -> Self {
        let mut u = Usage::default();
        for g in grants {
            match g.device {
                DeviceId::Gpu(_) => u.gpus += g.share,
                DeviceId::Cpu(_) => u.cpu_slots += 1,
            }
        }
        u
    }

    /// The usage a request would amount to once started (0 for an invalid request).
    pub fn of_request(req: &ResourceRequest) -> Self {
        Need::from_request(req)
            .map(|n| Self::of_need(&n))
            .unwrap_or_default()
    }

    pub(crate) fn of_need(need: &Need) -> Self {
        match *need {
            Need::Cpu => Usage {
                gpus: 0.0,
                cpu_slots: 1,
            },
            Need::Gang { n, .. } => Usage {
                gpus: f64::from(n),
                cpu_slots: 0,
            },
            Need::Share { units, .. } => Usage {
                gpus: units_share(units),
                cpu_slots: 0,
            },
        }
    }

    /// Adds another usage to this one.
    pub fn add(&mut self, other: Usage) {
        self.gpus += other.gpus;
        self.cpu_slots = self.cpu_slots.saturating_add(other.cpu_slots);
    }

    /// GPUs first, then CPU slots.
    pub fn cmp_load(&self, other: &Usage) -> Ordering {
        self.gpus
            .total_cmp(&other.gpus)
            .then(self.cpu_slots.cmp(&other.cpu_slots))
    }
}

/// FIFO key within a priority level: submission time, then id.
fn fifo_key(r: &PendingRun) -> (u64, u64) {
    (r.submitted_at, r.id.0)
}

/// Orders candidate runs (each with its validated need). Without fair share: priority (higher
/// first), then submission time, then id. With fair share, within one priority level the runs
/// are dealt out user by user: the next run is the earliest run of the user whose usage (running
/// now, plus the runs already dealt in this order) is least, ties going to the earlier run. A user
/// with nothing running therefore goes before one holding GPUs, and two idle users alternate.
pub fn order<'a>(
    candidates: Vec<(&'a PendingRun, Need)>,
    usage: &BTreeMap<String, Usage>,
    fair_share: bool,
) -> Vec<(&'a PendingRun, Need)> {
    let mut sorted = candidates;
    sorted.sort_by(|a, b| {
        b.0.priority
            .cmp(&a.0.priority)
            .then(fifo_key(a.0).cmp(&fifo_key(b.0)))
    });
    if !fair_share {
        return sorted;
    }
    let mut out = Vec::with_capacity(sorted.len());
    let mut load: BTreeMap<&str, Usage> = BTreeMap::new();
    let mut rest = sorted.into_iter().peekable();
    while let Some(first) = rest.next() {
        // One priority level: a FIFO queue per user.
        let level = first.0.priority;
        let mut queues: BTreeMap<&str, VecDeque<(&PendingRun, Need)>> = BTreeMap::new();
        queues
            .entry(first.0.user.as_str())
            .or_default()
            .push_back(first);
        while let Some(next) = rest.next_if(|r| r.0.priority == level) {
            queues
                .entry(next.0.user.as_str())
                .or_default()
                .push_back(next);
        }
        for user in queues.keys() {
            load.entry(user)
                .or_insert_with(|| usage.get(*user).copied().unwrap_or_default());
        }
        loop {
            let pick = queues
                .iter()
                .filter_map(|(user, q)| q.front().map(|head| (*user, head)))
                .min_by(|(ua, ha), (ub, hb)| {
                    let (la, lb) = (load[ua], load[ub]);
                    la.cmp_load(&lb).then(fifo_key(ha.0).cmp(&fifo_key(hb.0)))
                })
                .map(|(user, _)| user);
            let Some(user) = pick else { break };
            if let Some(run) = queues.get_mut(user).and_then(VecDeque::pop_front) {
                if let Some(l) = load.get_mut(user) {
                    l.add(Usage::of_need(&run.1));
                }
                out.push(run);
            }
        }
    }
    out
}
