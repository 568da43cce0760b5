//! The per-user GPU cap (`[quotas] max_gpus_per_user`) as one more rule of the pure policy: a
//! run whose user already holds, or would with it hold, more GPU-equivalents than the cap (a
//! whole GPU counts 1, a share its fraction; running runs plus the starts of this decision)
//! waits with the reason "user alice at GPU quota 2/2" instead of starting. It does not block
//! the runs behind it: other users' runs, and the user's CPU runs, still start.

use std::collections::BTreeMap;

use super::Usage;
use super::ledger::Need;

/// Slack for comparing sums of shares (quantized to millionths of a GPU).
const EPS: f64 = 1e-6;

/// The GPU use per user during one decision, against an optional cap.
#[derive(Debug, Clone)]
pub(super) struct GpuQuota {
    cap: Option<u32>,
    used: BTreeMap<String, f64>,
}

impl GpuQuota {
    /// The cap (`None`: no limit) over what each user runs now.
    pub(super) fn new(cap: Option<u32>, usage: &BTreeMap<String, Usage>) -> Self {
        let used = usage
            .iter()
            .map(|(u, use_)| (u.clone(), use_.gpus))
            .collect();
        Self { cap, used }
    }

    /// Why `user` may not start `need` now, if the cap forbids it.
    pub(super) fn refuse(&self, user: &str, need: &Need) -> Option<String> {
        let cap = self.cap?;
        let want = Usage::of_need(need).gpus;
        if want == 0.0 {
            return None;
        }
        let used = self.used.get(user).copied().unwrap_or(0.0);
        if used + want <= f64::from(cap) + EPS {
            return None;
        }
        if want > f64::from(cap) + EPS {
            return Some(format!(
                "needs {} GPUs; user {user}'s GPU quota is {cap}",
                gpus(want)
            ));
        }
        Some(format!("user {user} at GPU quota {}/{cap}", gpus(used)))
    }

    /// Counts a start of `need` for `user`.
    pub(super) fn add(&mut self, user: &str, need: &Need) {
        *self.used.entry(user.to_string()).or_default() += Usage::of_need(need).gpus;
    }
}

/// GPU-equivalents as a user reads them: "2", "1.5", "0.33".
fn gpus(v: f64) -> String {
    if (v - v.round()).abs() < EPS {
        format!("{}", v.round())
    } else {
        format!("{:.2}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::testkit::{Sim, cpu, gang, inventory, share};
    use super::super::{SchedulerConfig, Usage};
    use cauda_model::ResourceRequest;

    #[test]
    fn a_user_at_the_cap_waits_and_others_and_cpu_runs_go_ahead() {
        let devices = ["gpu:0", "gpu:1", "gpu:2", "gpu:3", "cpu:1"];
        let mut sim = Sim::new(inventory(&devices), SchedulerConfig::default());
        sim.gpu_quota = Some(2);
        let a1 = sim.submit("alice", 0, gang(1));
        let a2 = sim.submit("alice", 0, gang(1));
        let a3 = sim.submit("alice", 0, gang(1));
        let a_cpu = sim.submit("alice", 0, cpu());
        let b = sim.submit("bob", 0, gang(2));
        let d = sim.step();
        for id in [a1, a2, a_cpu, b] {
            assert!(sim.is_running(id), "{id} starts: {d:?}");
        }
        assert_eq!(d.reason(a3), Some("user alice at GPU quota 2/2"));
        // A share fits while it keeps her within the cap; a finished run makes room.
        sim.complete(a1);
        let half = sim.submit("alice", 0, share(0.5, None));
        let d = sim.step();
        assert!(sim.is_running(a3), "{d:?}");
        assert_eq!(d.reason(half), Some("user alice at GPU quota 2/2"));
        let too_big = sim.submit("carol", 0, gang(3));
        let d = sim.step();
        assert_eq!(
            d.reason(too_big),
            Some("needs 3 GPUs; user carol's GPU quota is 2")
        );
    }

    #[test]
    fn without_a_cap_nothing_changes() {
        let mut sim = Sim::new(inventory(&["gpu:0", "gpu:1"]), SchedulerConfig::default());
        let runs: Vec<_> = (0..2).map(|_| sim.submit("alice", 0, gang(1))).collect();
        sim.step();
        assert!(runs.iter().all(|r| sim.is_running(*r)));
    }

    fn request() -> impl Strategy<Value = ResourceRequest> {
        prop_oneof![
            Just(cpu()),
            (1u32..=3).prop_map(gang),
            prop_oneof![Just(0.25), Just(0.5), Just(1.0)].prop_map(|s| share(s, None)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// However runs arrive and finish, no user ever holds more GPUs than the cap, and a
        /// run within the cap that the inventory can hold is not kept waiting forever.
        #[test]
        fn no_user_ever_exceeds_the_gpu_cap(
            cap in 1u32..=3,
            fair_share in any::<bool>(),
            backfill in any::<bool>(),
            jobs in proptest::collection::vec((0usize..3, request(), 0usize..6, 1usize..4), 1..14),
        ) {
            let config = SchedulerConfig { fair_share, backfill, reserve_after_ms: 3000 };
            let mut sim = Sim::new(inventory(&["gpu:0", "gpu:1", "gpu:2", "gpu:3", "cpu:1"]), config);
            sim.gpu_quota = Some(cap);
            let users = ["ann", "ben", "cy"];
            let mut ends = Vec::new();
            let mut submitted = Vec::new();
            let bound = 10 + jobs.iter().map(|j| j.3 + 1).sum::<usize>();
            for step in 0..bound {
                sim.now = step as u64 * 1000;
                ends.retain(|&(id, end)| {
                    if end <= step { sim.complete(id); }
                    end > step
                });
                for (user, req, at, duration) in &jobs {
                    if *at == step {
                        let id = sim.submit(users[*user], 0, req.clone());
                        submitted.push((id, req.clone(), *duration));
                    }
                }
                let d = sim.step();
                for (id, _) in &d.starts {
                    let duration = submitted.iter().find(|s| s.0 == *id).map_or(1, |s| s.2);
                    ends.push((*id, step + duration));
                }
                for user in users {
                    let held: f64 = sim
                        .running
                        .values()
                        .filter(|(u, _, _)| u == user)
                        .map(|(_, _, g)| Usage::of_grants(g).gpus)
                        .sum();
                    prop_assert!(held <= f64::from(cap) + 1e-6, "{user} holds {held} > {cap}");
                }
            }
            for (id, req, _) in &submitted {
                let within = Usage::of_request(req).gpus <= f64::from(cap) + 1e-6;
                prop_assert_eq!(sim.started.iter().any(|(s, _)| s == id), within, "run {}", id);
            }
        }
    }
}
