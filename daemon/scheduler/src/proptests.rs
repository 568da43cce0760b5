//! Property tests: random inventories, requests and submit/decide/complete sequences never
//! overcommit a device, never share a whole GPU, give gangs exactly N distinct GPUs, give every
//! started run what it asked for, explain every waiting run, and start every possible run
//! once the arrivals stop.

use proptest::prelude::*;

use cauda_model::{DeviceId, ResourceRequest, RunId};

use super::inventory::{DeviceKind, Inventory};
use super::ledger::{share_units, units_share};
use super::testkit::{Sim, cpu, gang, share};
use super::{Decision, DeviceInfo, SchedulerConfig};

#[derive(Debug, Clone)]
struct Job {
    user: usize,
    priority: i32,
    request: ResourceRequest,
    submit_step: usize,
    duration: usize,
}

fn mem() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        Just(None),
        Just(Some(4000)),
        Just(Some(8000)),
        Just(Some(16000)),
        Just(Some(30000))
    ]
}

fn request() -> impl Strategy<Value = ResourceRequest> {
    let shares = prop_oneof![
        Just(0.1),
        Just(0.25),
        Just(1.0 / 3.0),
        Just(0.5),
        Just(0.75),
        Just(1.0)
    ];
    prop_oneof![
        Just(cpu()),
        (1u32..=5, mem()).prop_map(|(n, m)| ResourceRequest {
            gpu_mem_mb: m,
            ..gang(n)
        }),
        (shares, mem()).prop_map(|(s, m)| share(s, m)),
    ]
}

fn job() -> impl Strategy<Value = Job> {
    (0usize..3, 0i32..3, request(), 0usize..8, 1usize..5).prop_map(
        |(user, priority, request, submit_step, duration)| Job {
            user,
            priority,
            request,
            submit_step,
            duration,
        },
    )
}

fn inventory() -> impl Strategy<Value = Inventory> {
    let gpu_mem = prop_oneof![Just(None), Just(Some(16000)), Just(Some(24000))];
    (proptest::collection::vec(gpu_mem, 1..=4), 0u32..=2).prop_map(|(gpus, cpus)| {
        let mut devices: Vec<DeviceInfo> = (0..cpus).map(DeviceInfo::cpu).collect();
        devices.extend(
            gpus.into_iter()
                .enumerate()
                .map(|(i, m)| DeviceInfo::gpu(i as u32, m)),
        );
        Inventory::new(devices).expect("generated inventory is valid")
    })
}

fn config() -> impl Strategy<Value = SchedulerConfig> {
    (any::<bool>(), any::<bool>(), 0u64..6000).prop_map(
        |(fair_share, backfill, reserve_after_ms)| SchedulerConfig {
            fair_share,
            backfill,
            reserve_after_ms,
        },
    )
}

/// Whether the inventory could ever run `req` (computed here independently of the policy).
fn possible(inv: &Inventory, req: &ResourceRequest) -> bool {
    let mem_ok = |d: &DeviceInfo| match (req.gpu_mem_mb, d.mem_mb) {
        (Some(w), Some(cap)) => w <= cap,
        _ => true,
    };
    let gpus = inv
        .devices()
        .iter()
        .filter(|d| d.kind == DeviceKind::Gpu && mem_ok(d))
        .count();
    match (req.gpus, req.gpu_share) {
        (0, None) => inv.cpu_slots() > 0,
        (0, Some(_)) => gpus > 0,
        (n, _) => gpus >= n as usize,
    }
}

/// Every start's grants match its request exactly.
fn check_grants(inv: &Inventory, req: &ResourceRequest, grants: &[cauda_model::Grant]) {
    for g in grants {
        assert!(
            inv.get(&g.device).is_some(),
            "granted a device outside the inventory: {g:?}"
        );
    }
    match (req.gpus, req.gpu_share) {
        (0, None) => {
            assert_eq!(grants.len(), 1);
            assert!(matches!(grants[0].device, DeviceId::Cpu(_)) && grants[0].share == 1.0);
        }
        (0, Some(s)) => {
            assert_eq!(grants.len(), 1);
            assert!(matches!(grants[0].device, DeviceId::Gpu(_)));
            assert_eq!(grants[0].share, units_share(share_units(s)));
            assert!((grants[0].share - s).abs() <= 1e-6);
            assert_eq!(grants[0].mem_mb, req.gpu_mem_mb);
        }
        (n, _) => {
            assert_eq!(grants.len(), n as usize, "gang of {n}: {grants:?}");
            let mut ids: Vec<&DeviceId> = grants.iter().map(|g| &g.device).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(
                ids.len(),
                n as usize,
                "gang devices not distinct: {grants:?}"
            );
            for g in grants {
                assert!(matches!(g.device, DeviceId::Gpu(_)) && g.share == 1.0);
                let cap = inv.get(&g.device).and_then(|d| d.mem_mb);
                if let (Some(w), Some(c)) = (req.gpu_mem_mb, cap) {
                    assert!(w <= c, "gang on a GPU with too little memory: {g:?}");
                }
            }
        }
    }
}

fn check_reasons(sim: &Sim, before: &[RunId], d: &Decision) {
    for id in before {
        let started = d.grants(*id).is_some();
        let reasons = d.reasons.iter().filter(|(r, _)| r == id).count();
        assert_eq!(
            reasons,
            usize::from(!started),
            "run {id}: started {started}, {reasons} reasons"
        );
    }
    assert_eq!(d.starts.len() + d.reasons.len(), before.len());
    let _ = sim;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_schedules_keep_every_invariant(
        inv in inventory(),
        config in config(),
        jobs in proptest::collection::vec(job(), 1..16),
    ) {
        let mut sim = Sim::new(inv.clone(), config);
        let users = ["ann", "ben", "cy"];
        let mut job_of: Vec<(RunId, usize)> = Vec::new();
        let mut ends: Vec<(RunId, usize)> = Vec::new();
        let bound = 8 + jobs.iter().map(|j| j.duration + 1).sum::<usize>();
        for step in 0..bound {
            sim.now = step as u64 * 1000;
            ends.retain(|&(id, end)| {
                if end <= step { sim.complete(id); }
                end > step
            });
            for (i, j) in jobs.iter().enumerate().filter(|(_, j)| j.submit_step == step) {
                let id = sim.submit(users[j.user], j.priority, j.request.clone());
                job_of.push((id, i));
            }
            let before: Vec<RunId> = sim.pending.iter().map(|p| p.id).collect();
            let d = sim.step();
            check_reasons(&sim, &before, &d);
            for (id, grants) in &d.starts {
                let i = job_of.iter().find(|(r, _)| r == id).map(|(_, i)| *i).expect("known run");
                check_grants(&inv, &jobs[i].request, grants);
                ends.push((*id, step + jobs[i].duration));
            }
        }
        // Arrivals stopped long ago: every run the inventory can hold has started.
        for (id, i) in &job_of {
            let started = sim.started.iter().any(|(s, _)| s == id);
            prop_assert_eq!(started, possible(&inv, &jobs[*i].request), "run {} {:?}", id, jobs[*i]);
        }
    }
}
