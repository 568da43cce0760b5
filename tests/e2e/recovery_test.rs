//! The daemon killed with SIGKILL while a grid trains, then restarted on the same data dir:
//! every run finishes exactly once, with contiguous epochs (none missing, none repeated) and its
//! metrics intact, and the dead daemon's orphaned workers stop by themselves. Also: a fake
//! 4-GPU inventory where no device is ever given beyond its share and every worker sees exactly
//! its devices in CUDA_VISIBLE_DEVICES.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cauda_proto::v1;
use common::*;

const LIMIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_daemon_mid_grid_resumes_every_run_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = "devices = [\"cpu:2\"]\nmax_retries = 0\n";
    let mut first = Caudad::start(dir.path(), config);
    let mut client = first.client().await;
    let total = 150;
    let spec = tiny_spec("chaos", total, "[sweep]\n\"train.seed\" = [1, 2, 3, 4]\n");
    let ids = submit_ids(&mut client, &spec).await;
    // Kill while the first two runs are mid-way (a few epochs and checkpoints stored).
    let interrupted = wait_for(LIMIT, "two runs a few epochs in", || {
        let mut c = client.clone();
        let ids = ids.clone();
        async move {
            let mut mid = Vec::new();
            for id in ids {
                if epochs(&mut c, id).await.len() >= 3 {
                    mid.push(id);
                }
            }
            (mid.len() >= 2).then_some(mid)
        }
    })
    .await;
    let old_url = first.url.clone();
    let orphans = first.workers();
    assert!(!orphans.is_empty(), "workers were training");
    first.kill9();
    drop(client);

    let second = Caudad::start(dir.path(), config);
    let mut client = second.client().await;
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    for run in &runs {
        let states = assert_finished_once(&mut client, run, total).await;
        let metrics = epochs(&mut client, run.run_id).await;
        if interrupted.contains(&run.run_id) {
            assert_eq!(run.attempt, 2, "r-{} resumed as a new attempt", run.run_id);
            let requeue = states
                .iter()
                .find(|s| s.0 == v1::RunState::Running && s.1 == v1::RunState::Queued)
                .expect("requeued at restart");
            assert!(requeue.2.contains("daemon restarted"), "{}", requeue.2);
            assert!(metrics[0].attempt == 1 && metrics.last().unwrap().attempt == 2);
        }
    }
    let log = second.stderr.lock().unwrap().join("\n");
    assert!(log.is_empty() || !log.contains("panicked"), "{log}");
    // The dead daemon's workers notice (their daemon is gone) and stop by themselves.
    wait_for(
        Duration::from_secs(30),
        "the orphaned workers to exit",
        || {
            let left = workers_of(&old_url);
            async move { left.is_empty().then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_fake_gpus_are_never_over_given_and_workers_see_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(
        dir.path(),
        "devices = [\"gpu:0\", \"gpu:1\", \"gpu:2\", \"gpu:3\"]\n",
    );
    let mut client = daemon.client().await;
    let grid = [
        ("whole", "gpus = 1", "[1, 2, 3, 4]"),
        ("pair", "gpus = 2", "[1, 2]"),
        ("half", "gpu_share = 0.5", "[1, 2, 3, 4]"),
    ];
    let ids = submit_grid(&mut client, 40, &grid).await;
    // Sample the devices while the grid runs: no share above 1, ever. The sampler is stopped and
    // joined, so an RPC error in it fails the test.
    let violations = Arc::new(Mutex::new(Vec::new()));
    let seen = violations.clone();
    let mut sampler = client.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let sampling = tokio::spawn(async move {
        for _ in 0..2000 {
            if stopped.load(Ordering::Relaxed) {
                break;
            }
            let devices = sampler
                .list_devices(v1::ListDevicesRequest {})
                .await
                .unwrap()
                .into_inner()
                .devices;
            for d in devices {
                let used: f64 = d.runs.iter().map(|r| r.share).sum();
                if used > 1.0 + 1e-9 {
                    seen.lock()
                        .unwrap()
                        .push(format!("{} at {used}", d.device_id));
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    stop.store(true, Ordering::Relaxed);
    join(sampling).await;
    assert!(
        violations.lock().unwrap().is_empty(),
        "{:?}",
        violations.lock().unwrap()
    );
    let mut per_device: BTreeMap<String, usize> = BTreeMap::new();
    for run in &runs {
        assert_eq!(run.state(), v1::RunState::Succeeded, "{run:?}");
        let events = events(&mut client, run.run_id).await;
        let grants = first_grants(&events);
        let want = run.resources.as_ref().unwrap();
        assert_eq!(
            grants.len(),
            want.gpus.max(1) as usize,
            "gang: all devices at once"
        );
        if let Some(share) = want.gpu_share {
            assert!((grants[0].share - share).abs() < 1e-9);
        }
        let expected: Vec<String> = grants
            .iter()
            .map(|g| g.device_id.trim_start_matches("gpu:").to_string())
            .collect();
        for g in &grants {
            *per_device.entry(g.device_id.clone()).or_default() += 1;
        }
        // The worker's own first line (not the daemon's launch line).
        let seen = log_lines(&events)
            .into_iter()
            .filter(|l| l.starts_with("run "))
            .find_map(|l| {
                l.split("CUDA_VISIBLE_DEVICES=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .map(str::to_string)
            })
            .expect("the worker printed what it sees");
        assert_eq!(seen, expected.join(","), "r-{}", run.run_id);
    }
    assert_eq!(per_device.len(), 4, "all four GPUs used: {per_device:?}");
}
