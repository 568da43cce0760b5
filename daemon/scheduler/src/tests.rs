//! Unit tests of the policy on a fake 4-GPU inventory with an injected clock: order, gangs,
//! packing, memory, backfill without starvation, fair share and the reason texts.

use cauda_model::{DeviceId, RunId};

use super::testkit::{Sim, cpu, gang, inventory, share};
use super::{SchedulerConfig, decide};

const FOUR_GPUS: &[&str] = &["cpu:2", "gpu:0", "gpu:1", "gpu:2", "gpu:3"];

fn fifo() -> SchedulerConfig {
    SchedulerConfig {
        fair_share: false,
        backfill: true,
        reserve_after_ms: u64::MAX,
    }
}

fn gpus(ids: &[u32]) -> Vec<DeviceId> {
    ids.iter().map(|&i| DeviceId::Gpu(i)).collect()
}

#[test]
fn priority_first_then_submission_time_then_id() {
    let mut sim = Sim::new(inventory(&["gpu:0"]), fifo());
    let low = sim.submit("a", 0, gang(1));
    sim.now = 10;
    let high_b = sim.submit("a", 5, gang(1));
    let high_c = sim.submit("a", 5, gang(1)); // same time, larger id
    let d = sim.step();
    assert_eq!(
        d.starts.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![high_b]
    );
    assert_eq!(d.reason(high_c), Some("needs 1 GPU, 0 free; next in line"));
    assert_eq!(d.reason(low), Some("needs 1 GPU, 0 free; 1 run ahead"));
    sim.complete(high_b);
    assert_eq!(sim.step().starts[0].0, high_c);
    sim.complete(high_c);
    assert_eq!(sim.step().starts[0].0, low);
}

#[test]
fn gang_gets_all_its_gpus_or_none() {
    let mut sim = Sim::new(inventory(FOUR_GPUS), fifo());
    let one = sim.submit("a", 0, gang(1));
    sim.step();
    assert_eq!(sim.devices_of(one), gpus(&[0]));
    let four = sim.submit("a", 0, gang(4));
    let three = sim.submit("a", 0, gang(3));
    let d = sim.step();
    assert_eq!(d.grants(four), None, "no partial gang");
    // Reasons describe the state after this decision: the 3-GPU run took the free ones.
    assert_eq!(d.reason(four), Some("needs 4 GPUs, 0 free; next in line"));
    assert_eq!(sim.devices_of(three), gpus(&[1, 2, 3]));
    assert!(
        d.grants(three)
            .is_some_and(|g| g.iter().all(|g| g.share == 1.0))
    );
    sim.complete(one);
    sim.complete(three);
    sim.step();
    assert_eq!(sim.devices_of(four), gpus(&[0, 1, 2, 3]));
}

#[test]
fn four_quarters_pack_onto_one_gpu_and_a_fifth_waits() {
    let mut sim = Sim::new(inventory(FOUR_GPUS), fifo());
    let quarters: Vec<RunId> = (0..4)
        .map(|_| sim.submit("a", 0, share(0.25, None)))
        .collect();
    sim.step();
    for q in &quarters {
        assert_eq!(sim.devices_of(*q), gpus(&[0]), "best fit packs onto gpu:0");
    }
    let three = sim.submit("a", 0, gang(3));
    let fifth = sim.submit("a", 0, share(0.25, None));
    let whole = sim.submit("a", 0, gang(1));
    let d = sim.step();
    assert_eq!(sim.devices_of(three), gpus(&[1, 2, 3]));
    assert_eq!(
        d.reason(fifth),
        Some("needs 0.25 of a GPU; most free share 0; next in line")
    );
    assert_eq!(d.reason(whole), Some("needs 1 GPU, 0 free; 1 run ahead"));
    // A whole GPU is never given while shares remain on it.
    sim.complete(three);
    sim.complete(quarters[0]);
    let d = sim.step();
    assert_eq!(
        sim.devices_of(fifth),
        gpus(&[0]),
        "the fullest GPU it fits on"
    );
    assert_eq!(sim.devices_of(whole), gpus(&[1]));
    assert!(d.grants(fifth).is_some_and(|g| g[0].share == 0.25));
}

#[test]
fn memory_packs_by_gpu_mem_mb() {
    let mut sim = Sim::new(inventory(&["gpu:0@24000"]), fifo());
    let big = sim.submit("a", 0, share(0.25, Some(16000)));
    let too_much = sim.submit("a", 0, share(0.25, Some(10000)));
    let fits = sim.submit("a", 0, share(0.25, Some(8000)));
    let d = sim.step();
    assert!(sim.is_running(big) && sim.is_running(fits));
    assert_eq!(
        d.reason(too_much),
        Some(
            "needs 0.25 of a GPU with 10000 MiB; most free share 0.5, most free memory 0 MiB; next in line"
        )
    );
    assert_eq!(d.grants(fits).and_then(|g| g[0].mem_mb), Some(8000));
    let huge = sim.submit("a", 0, share(0.5, Some(30000)));
    let wide = sim.submit("a", 0, ResourceRequestExt::gang_mem(1, 30000));
    let d = sim.step();
    assert_eq!(
        d.reason(huge),
        Some("needs 0.5 of a GPU with 30000 MiB; no GPU has that much memory")
    );
    assert_eq!(
        d.reason(wide),
        Some("needs 1 GPU with 30000 MiB each; the inventory has 0 GPUs with that much memory")
    );
}

struct ResourceRequestExt;
impl ResourceRequestExt {
    fn gang_mem(n: u32, mem: u64) -> cauda_model::ResourceRequest {
        cauda_model::ResourceRequest {
            gpus: n,
            gpu_share: None,
            gpu_mem_mb: Some(mem),
        }
    }
}

/// Runs `steps` steps on 2 GPUs: one 1-GPU run is submitted every step and lasts 3 steps, while
/// a 2-GPU run waits from step 0. Returns the step the 2-GPU run started at, if it did.
fn big_run_under_a_stream_of_small_ones(config: SchedulerConfig, steps: usize) -> Option<usize> {
    let mut sim = Sim::new(inventory(&["gpu:0", "gpu:1"]), config);
    let warm = sim.submit("a", 0, gang(1));
    sim.step();
    assert!(sim.is_running(warm));
    let big = sim.submit("a", 0, gang(2));
    let mut ends: Vec<(RunId, usize)> = vec![(warm, 2)];
    for step in 0..steps {
        sim.now = step as u64 * 1000;
        ends.retain(|&(id, end)| {
            if end <= step {
                sim.complete(id);
            }
            end > step
        });
        let small = sim.submit("a", 0, gang(1));
        let d = sim.step();
        if sim.is_running(big) {
            return Some(step);
        }
        assert!(
            d.reason(big).is_some_and(|r| r.starts_with("needs 2 GPUs")),
            "{d:?}"
        );
        for (id, _) in &d.starts {
            ends.push((*id, step + 3));
        }
        let _ = small;
    }
    None
}

#[test]
fn backfill_lets_small_runs_through_and_the_big_one_still_starts() {
    // Without a hold the stream of small runs keeps one GPU busy forever: the big run starves.
    assert_eq!(big_run_under_a_stream_of_small_ones(fifo(), 60), None);
    // With a hold after 5 s it starts once the held GPUs drain (runs last 3 steps).
    let config = SchedulerConfig {
        reserve_after_ms: 5000,
        ..fifo()
    };
    let started = big_run_under_a_stream_of_small_ones(config, 60).expect("big run starts");
    assert!((5..=9).contains(&started), "started at step {started}");
}

#[test]
fn small_runs_backfill_before_the_hold_and_not_onto_held_gpus_after() {
    let config = SchedulerConfig {
        reserve_after_ms: 1000,
        ..fifo()
    };
    let mut sim = Sim::new(inventory(FOUR_GPUS), config);
    let busy = sim.submit("a", 0, gang(2));
    sim.step();
    let big = sim.submit("a", 0, gang(4));
    let small = sim.submit("a", 0, gang(1));
    let d = sim.step();
    assert!(sim.is_running(small), "backfilled: {d:?}");
    assert_eq!(d.reason(big), Some("needs 4 GPUs, 1 free; next in line"));
    sim.now = 1000;
    let late = sim.submit("a", 0, gang(1));
    let d = sim.step();
    assert_eq!(
        d.reason(big),
        Some(
            "needs 4 GPUs, 1 free; next in line; holding gpu:0, gpu:1, gpu:2, gpu:3 until they free up"
        )
    );
    assert_eq!(
        d.reason(late),
        Some("needs 1 GPU, 0 free; devices that would fit are held for r-2; 1 run ahead")
    );
    sim.complete(busy);
    sim.complete(small);
    sim.step();
    assert_eq!(sim.devices_of(big), gpus(&[0, 1, 2, 3]));
}

#[test]
fn without_backfill_nothing_passes_a_blocked_run() {
    let config = SchedulerConfig {
        backfill: false,
        ..fifo()
    };
    let mut sim = Sim::new(inventory(FOUR_GPUS), config);
    sim.submit("a", 0, gang(3));
    sim.step();
    let big = sim.submit("a", 0, gang(2));
    let small = sim.submit("a", 0, gang(1));
    let cpu_run = sim.submit("a", 0, cpu());
    let d = sim.step();
    assert!(d.starts.is_empty());
    assert_eq!(d.reason(big), Some("needs 2 GPUs, 1 free; next in line"));
    assert_eq!(
        d.reason(small),
        Some(&*format!(
            "waiting its turn behind {big} (backfill is off); 1 run ahead"
        ))
    );
    assert_eq!(
        d.reason(cpu_run),
        Some(&*format!(
            "waiting its turn behind {big} (backfill is off); next in line"
        ))
    );
}

#[test]
fn fair_share_alternates_users_and_favours_the_idle_one() {
    let config = SchedulerConfig {
        fair_share: true,
        ..fifo()
    };
    let mut sim = Sim::new(inventory(&["gpu:0", "gpu:1"]), config);
    let alice: Vec<RunId> = (0..3).map(|_| sim.submit("alice", 0, gang(1))).collect();
    sim.now = 5;
    let bob: Vec<RunId> = (0..3).map(|_| sim.submit("bob", 0, gang(1))).collect();
    let d = sim.step();
    assert_eq!(
        d.starts.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![alice[0], bob[0]]
    );
    // alice's next run is ahead of bob's (equal usage, earlier submission), then they alternate.
    assert_eq!(
        d.reason(alice[1]),
        Some("needs 1 GPU, 0 free; next in line")
    );
    assert_eq!(d.reason(bob[1]), Some("needs 1 GPU, 0 free; 1 run ahead"));
    assert_eq!(
        d.reason(alice[2]),
        Some("needs 1 GPU, 0 free; 2 runs ahead")
    );
    // bob finishes: alice holds 1 GPU, bob none, so bob goes first despite alice's earlier run.
    sim.complete(bob[0]);
    let d = sim.step();
    assert_eq!(
        d.starts.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![bob[1]]
    );
    // Priority still beats fair share.
    sim.complete(bob[1]);
    let urgent = sim.submit("alice", 9, gang(1));
    assert_eq!(sim.step().starts[0].0, urgent);

    // Pure FIFO without fair share.
    let mut sim = Sim::new(inventory(&["gpu:0", "gpu:1"]), fifo());
    let a: Vec<RunId> = (0..2).map(|_| sim.submit("alice", 0, gang(1))).collect();
    sim.now = 5;
    sim.submit("bob", 0, gang(1));
    assert_eq!(sim.step().starts.iter().map(|s| s.0).collect::<Vec<_>>(), a);
}

#[test]
fn every_waiting_run_gets_a_reason() {
    let mut sim = Sim::new(inventory(FOUR_GPUS), fifo());
    let running = sim.submit("a", 0, gang(3));
    let cpus: Vec<RunId> = (0..2).map(|_| sim.submit("a", 0, cpu())).collect();
    sim.step();
    assert_eq!(sim.devices_of(cpus[1]), vec![DeviceId::Cpu(1)]);
    let two: Vec<RunId> = (0..4).map(|_| sim.submit("a", 0, gang(2))).collect();
    let cpu_waits: Vec<RunId> = (0..3).map(|_| sim.submit("a", 0, cpu())).collect();
    let eight = sim.submit("a", 0, gang(8));
    let stage2 = sim.submit("a", 0, cpu());
    if let Some(p) = sim.pending.last_mut() {
        p.ready = false;
        p.depends_on = Some(running);
    }
    let bad_share = sim.submit("a", 0, share(1.5, None));
    let both = sim.submit(
        "a",
        0,
        cauda_model::ResourceRequest {
            gpus: 2,
            gpu_share: Some(0.5),
            gpu_mem_mb: None,
        },
    );
    let d = sim.step();
    assert!(d.starts.is_empty());
    assert_eq!(d.reasons.len(), sim.pending.len());
    assert_eq!(d.reason(two[3]), Some("needs 2 GPUs, 1 free; 3 runs ahead"));
    assert_eq!(
        d.reason(cpu_waits[2]),
        Some("no CPU slot free; 2 runs ahead")
    );
    assert_eq!(
        d.reason(eight),
        Some("needs 8 GPUs; the inventory has 4 GPUs")
    );
    assert_eq!(d.reason(stage2), Some("waiting for r-1 (stage 1)"));
    assert_eq!(
        d.reason(bad_share),
        Some("invalid request: gpu_share must be in (0, 1], got 1.5")
    );
    assert_eq!(
        d.reason(both),
        Some("invalid request: gpus = 2 and gpu_share = 0.5 are both set; ask for one")
    );
}

#[test]
fn share_waiting_for_room_is_explained_and_held() {
    let config = SchedulerConfig {
        reserve_after_ms: 0,
        ..fifo()
    };
    let mut sim = Sim::new(inventory(&["gpu:0", "gpu:1"]), config);
    for _ in 0..3 {
        sim.submit("a", 0, share(0.25, None));
    }
    sim.submit("a", 0, gang(1));
    sim.step();
    let half = sim.submit("a", 0, share(0.5, None));
    let quarter = sim.submit("a", 0, share(0.25, None));
    let d = sim.step();
    assert_eq!(
        d.reason(half),
        Some(
            "needs 0.5 of a GPU; most free share 0.25; next in line; holding gpu:0 until they free up"
        )
    );
    assert_eq!(
        d.reason(quarter),
        Some(
            "needs 0.25 of a GPU; most free share 0; devices that would fit are held for r-5; 1 run ahead; holding gpu:1 until they free up"
        )
    );
}

#[test]
fn decide_is_a_pure_function_of_its_input() {
    let mut sim = Sim::new(inventory(FOUR_GPUS), SchedulerConfig::default());
    for i in 0..6 {
        sim.submit(if i % 2 == 0 { "a" } else { "b" }, i % 3, share(0.5, None));
    }
    let input = sim.input();
    assert_eq!(decide(&input), decide(&input));
}
