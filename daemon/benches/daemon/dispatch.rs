//! Submit-to-dispatch latency: how long from the start of a SubmitExperiment call until the
//! executor is told to launch the run, with a queue of runs that cannot start in front of it,
//! and how long one pure `scheduler::decide` takes on such a queue.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::ensure;
use caudad::model::{DeviceId, Grant, ResourceRequest, RunId};
use caudad::scheduler::{Inventory, PendingRun, SchedulerConfig, SchedulerInput, Usage, decide};

use crate::rig::{Rig, finish, queued_of, spec, submit};

/// Submit-to-launch latencies of `submits` one-run CPU submissions, each finished through the
/// worker API before the next, while `queued` GPU runs wait behind a run holding the only GPU.
pub fn submit_to_dispatch(queued: usize, submits: usize) -> anyhow::Result<Vec<Duration>> {
    let (rig, mut launches) = Rig::start(&["cpu:1", "gpu:0"])?;
    let runtime = crate::client_runtime()?;
    let samples = runtime.block_on(async {
        let mut cauda = rig.cauda().await?;
        let mut worker = rig.worker().await?;
        let (_, holder) = submit(&mut cauda, &spec("holder", 1, None)).await?;
        launches.expect(holder[0]).await?;
        if queued > 0 {
            let (experiment, runs) = submit(&mut cauda, &spec("queue", 1, Some(0..queued))).await?;
            ensure!(runs.len() == queued, "the grid gave {} runs", runs.len());
            let waiting = queued_of(&mut cauda, experiment).await?;
            ensure!(
                waiting as usize == queued,
                "{waiting} of {queued} runs queued"
            );
            launches.expect_none()?;
        }
        let mut samples = Vec::with_capacity(submits);
        for i in 0..submits {
            let text = spec(&format!("probe-{i}"), 0, None);
            let start = Instant::now();
            let (_, runs) = submit(&mut cauda, &text).await?;
            let launch = launches.expect(runs[0]).await?;
            samples.push(launch.at.saturating_duration_since(start));
            finish(&mut worker, launch).await?;
        }
        launches.expect_none()?;
        anyhow::Ok(samples)
    });
    drop(runtime);
    rig.stop()?;
    samples
}

/// The time of `reps` calls of `decide` with `queued` GPU runs waiting behind a held GPU and
/// one CPU run that starts (the decision each probe submission above asks for).
pub fn decide_time(queued: usize, reps: usize) -> anyhow::Result<Vec<Duration>> {
    let inventory = Inventory::from_spec(&["cpu:1".to_string(), "gpu:0".to_string()])?;
    let held = vec![Grant {
        device: DeviceId::Gpu(0),
        share: 1.0,
        mem_mb: None,
    }];
    let mut usage = BTreeMap::new();
    usage.insert("bench".to_string(), Usage::of_grants(&held));
    let pending_run = |id: u64, gpus: u32| PendingRun {
        id: RunId(id),
        user: "bench".into(),
        priority: 0,
        submitted_at: 1_000 + id,
        request: ResourceRequest {
            gpus,
            ..ResourceRequest::default()
        },
        ready: true,
        depends_on: None,
    };
    let mut pending: Vec<PendingRun> = (0..queued as u64).map(|i| pending_run(2 + i, 1)).collect();
    pending.push(pending_run(2 + queued as u64, 0));
    let input = SchedulerInput {
        now: 2_000 + queued as u64,
        inventory,
        allocations: BTreeMap::from([(RunId(1), held)]),
        pending,
        usage,
        config: SchedulerConfig::default(),
        gpu_quota: None,
    };
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        let decision = decide(std::hint::black_box(&input));
        samples.push(start.elapsed());
        ensure!(
            decision.starts.len() == 1 && decision.reasons.len() == queued,
            "decide started {} runs and gave {} reasons",
            decision.starts.len(),
            decision.reasons.len()
        );
    }
    Ok(samples)
}
