//! Property tests of the scheduler's order and fairness (the capacity and gang invariants are in
//! `proptests`): with interchangeable requests no run starts while a run ahead of it in the
//! order waits (priority first; FIFO within a priority, per user under fair share); under fair
//! share a light user's run is not starved by a heavy user's stream; and a gang waiting behind a
//! stream of small runs starts once it has waited `reserve_after_ms` and the runs on its
//! held devices end.

use proptest::prelude::*;

use cauda_model::{ResourceRequest, RunId};

use super::SchedulerConfig;
use super::testkit::{Sim, cpu, gang, inventory, share};

/// One interchangeable request kind per case, so any start could have gone to any waiting run.
fn uniform_request() -> impl Strategy<Value = (Vec<&'static str>, ResourceRequest)> {
    prop_oneof![
        Just((vec!["cpu:2"], cpu())),
        Just((vec!["cpu:3"], cpu())),
        Just((vec!["gpu:0", "gpu:1", "gpu:2"], gang(1))),
        Just((vec!["gpu:0", "gpu:1", "gpu:2", "gpu:3"], gang(2))),
        Just((vec!["gpu:0", "gpu:1"], share(0.5, None))),
    ]
}

#[derive(Debug, Clone)]
struct Arrival {
    user: usize,
    priority: i32,
    step: usize,
    duration: usize,
}

fn arrival() -> impl Strategy<Value = Arrival> {
    (0usize..3, 0i32..3, 0usize..10, 1usize..5).prop_map(|(user, priority, step, duration)| {
        Arrival {
            user,
            priority,
            step,
            duration,
        }
    })
}

const USERS: [&str; 3] = ["ann", "ben", "cy"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Priority then FIFO: when a run starts, no run that is ahead of it in the order waits.
    /// Without fair share "ahead" is (higher priority) or (same priority, submitted earlier);
    /// with fair share, users are dealt out by usage, so only priority and each user's own FIFO
    /// order are promised.
    #[test]
    fn no_run_overtakes_one_ahead_of_it(
        (devices, request) in uniform_request(),
        fair_share in any::<bool>(),
        backfill in any::<bool>(),
        arrivals in proptest::collection::vec(arrival(), 1..20),
    ) {
        let config = SchedulerConfig { fair_share, backfill, reserve_after_ms: 3000 };
        let mut sim = Sim::new(inventory(&devices), config);
        let mut info: Vec<(RunId, usize)> = Vec::new();
        let mut ends: Vec<(RunId, usize)> = Vec::new();
        let bound = 12 + arrivals.iter().map(|a| a.duration + 1).sum::<usize>();
        for step in 0..bound {
            sim.now = step as u64 * 1000;
            ends.retain(|&(id, end)| {
                if end <= step { sim.complete(id); }
                end > step
            });
            for (i, a) in arrivals.iter().enumerate().filter(|(_, a)| a.step == step) {
                let id = sim.submit(USERS[a.user], a.priority, request.clone());
                info.push((id, i));
            }
            let waiting_before = sim.pending.clone();
            let d = sim.step();
            for (started, _) in &d.starts {
                let a = waiting_before.iter().find(|p| p.id == *started).expect("was pending");
                for b in sim.pending.iter() {
                    let higher = b.priority > a.priority;
                    let same_earlier = b.priority == a.priority
                        && (b.submitted_at, b.id) < (a.submitted_at, a.id);
                    let ahead = higher
                        || (same_earlier && (!fair_share || b.user == a.user));
                    prop_assert!(
                        !ahead,
                        "{} (user {}, prio {}, t {}) started while {} (user {}, prio {}, t {}) waits",
                        a.id, a.user, a.priority, a.submitted_at,
                        b.id, b.user, b.priority, b.submitted_at
                    );
                }
                let i = info.iter().find(|(r, _)| r == started).map(|(_, i)| *i).expect("known");
                ends.push((*started, step + arrivals[i].duration));
            }
        }
        prop_assert!(sim.pending.is_empty(), "every run started: {:?}", sim.pending);
    }

    /// Fair share: a heavy user keeps every CPU slot busy and two more runs queued at every
    /// step, forever; a light user's run still starts within a bounded number of steps.
    #[test]
    fn fair_share_does_not_starve_a_light_user(
        slots in 1usize..4,
        durations in proptest::collection::vec(1usize..5, 40),
        light_at in 1usize..12,
    ) {
        let devices: Vec<String> = vec![format!("cpu:{slots}")];
        let devices: Vec<&str> = devices.iter().map(String::as_str).collect();
        let config = SchedulerConfig { fair_share: true, backfill: true, reserve_after_ms: 600_000 };
        let mut sim = Sim::new(inventory(&devices), config);
        let mut ends: Vec<(RunId, usize)> = Vec::new();
        let mut light = None;
        let max_duration = durations.iter().copied().max().unwrap_or(1);
        let mut k = 0;
        for step in 0..40 {
            sim.now = step as u64 * 1000;
            ends.retain(|&(id, end)| {
                if end <= step { sim.complete(id); }
                end > step
            });
            let heavy_waiting = sim.pending.iter().filter(|p| p.user == "heavy").count();
            for _ in heavy_waiting..2 + slots {
                sim.submit("heavy", 0, cpu());
            }
            if step == light_at {
                light = Some(sim.submit("light", 0, cpu()));
            }
            let d = sim.step();
            for (id, _) in &d.starts {
                ends.push((*id, step + durations[k % durations.len()]));
                k += 1;
            }
            // Bounded wait: only the heavy runs queued before it (at most 2 + slots) can go
            // first (on a usage tie the earlier run wins); each slot frees within max_duration.
            if let Some(id) = light
                && step >= light_at + (3 + slots) * max_duration
            {
                prop_assert!(
                    sim.started.iter().any(|(s, _)| *s == id),
                    "the light user's run waits at step {} (arrived at {})", step, light_at
                );
            }
        }
    }

    /// A gang of every GPU behind a stream of share runs from other users: once it has waited
    /// `reserve_after_ms` it holds GPUs, no later share lands there, and it starts within a
    /// bounded number of steps (all or nothing: never part of its GPUs).
    #[test]
    fn a_waiting_gang_is_not_starved_by_small_runs(
        gpus in 2u32..4,
        durations in proptest::collection::vec(1usize..4, 60),
        reserve_steps in 0u64..5,
    ) {
        let devices: Vec<String> = (0..gpus).map(|i| format!("gpu:{i}")).collect();
        let devices: Vec<&str> = devices.iter().map(String::as_str).collect();
        let config = SchedulerConfig {
            fair_share: true,
            backfill: true,
            reserve_after_ms: reserve_steps * 1000,
        };
        let mut sim = Sim::new(inventory(&devices), config);
        let mut ends: Vec<(RunId, usize)> = Vec::new();
        let mut big = None;
        let max_duration = durations.iter().copied().max().unwrap_or(1);
        let mut k = 0;
        for step in 0..60 {
            sim.now = step as u64 * 1000;
            ends.retain(|&(id, end)| {
                if end <= step { sim.complete(id); }
                end > step
            });
            for user in ["ann", "ben"] {
                sim.submit(user, 0, share(0.5, None));
            }
            if step == 1 {
                big = Some(sim.submit("cy", 0, gang(gpus)));
            }
            let d = sim.step();
            for (id, grants) in &d.starts {
                if Some(*id) == big {
                    prop_assert_eq!(grants.len(), gpus as usize, "all of the gang at once");
                }
                ends.push((*id, step + durations[k % durations.len()]));
                k += 1;
            }
            // Bounded wait: once it holds GPUs only the runs ahead of it in the fair-share
            // order (the two shares submitted with it) may still start before it.
            if let Some(id) = big
                && step > 1 + reserve_steps as usize + 4 * max_duration
            {
                prop_assert!(
                    sim.started.iter().any(|(s, _)| *s == id),
                    "the gang still waits at step {}", step
                );
            }
        }
    }
}
