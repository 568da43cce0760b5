//! GPU packing with memory accounting on a fake 4-GPU inventory (no real GPU): runs packed by
//! share and memory never exceed either on any GPU, gangs get all their GPUs at once or none,
//! a run whose worker dies of GPU out-of-memory is requeued once with a larger reservation
//! and then failed with the reason, and a measured peak reserves memory for the same config.
//! The first test runs the real `caudad serve` with real workers; the peak test talks to the
//! Worker service over gRPC as a worker would (a CPU-only host measures no peak).

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cauda_proto::v1::{self, cancel_run_request::Target};
use caudad::core::SystemClock;
use common::*;
use tonic::Code;

/// The fake inventory of the peak test: 4 GPUs of 24,000 MiB.
fn gpus4() -> Vec<String> {
    (0..4).map(|i| format!("gpu:{i}@24000")).collect()
}

const LIMIT: Duration = Duration::from_secs(240);

/// Every grant a run was given, one list per start (state change to RUNNING).
fn grants_per_start(events: &[v1::RunEvent]) -> Vec<Vec<v1::Grant>> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(v1::run_event::Event::State(s)) if s.to() == v1::RunState::Running => {
                Some(s.grants.clone())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_memory_and_gangs_fit_and_an_oom_run_is_requeued_once_with_more_memory() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(
        dir.path(),
        "devices = [\"gpu:0@8000\", \"gpu:1@8000\", \"gpu:2@8000\", \"gpu:3@8000\"]\nmax_retries = 0\n",
    );
    let mut client = daemon.client().await;
    // A run that dies of "CUDA out of memory": its data path makes the engine's error say so.
    let oom_spec = tiny_spec(
        "oom",
        3,
        "[resources]\ngpu_share = 0.25\ngpu_mem_mb = 3000\n",
    )
    .replace(
        "format = \"digits\"",
        "format = \"idx\"\npath = \"/usr/share/datasets/nonexistent/CUDA out of memory. Tried to allocate 2.00 GiB\"",
    );
    let oom = submit(&mut client, &oom_spec).await.runs[0].run_id;
    let mut ids = vec![oom];
    let grid = [
        // Memory binds: two fit on an 8000 MiB GPU though four would fit by share.
        (
            "mem",
            "gpu_share = 0.25\ngpu_mem_mb = 3000",
            "[1, 2, 3, 4, 5, 6]",
        ),
        ("quarter", "gpu_share = 0.25", "[1, 2]"),
        ("gang", "gpus = 4", "[1]"),
        ("pair", "gpus = 2\ngpu_mem_mb = 8000", "[1]"),
    ];
    ids.extend(submit_grid(&mut client, 12, &grid).await);
    // Sample devices and runs while they train: no GPU over its share or its memory, no run
    // running on part of its gang. The sampler is stopped and joined, so an RPC error in it fails
    // the test.
    let violations = Arc::new(Mutex::new(Vec::new()));
    let seen = violations.clone();
    // The most runs seen on one GPU at once, and the most memory reserved on one.
    let packed = Arc::new(Mutex::new((0usize, 0u64)));
    let most = packed.clone();
    let mut sampler = client.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let sampling = tokio::spawn(async move {
        for _ in 0..4000 {
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
                let share: f64 = d.runs.iter().map(|r| r.share).sum();
                let mem: u64 = d.runs.iter().filter_map(|r| r.mem_mb).sum();
                if let Ok(mut m) = most.lock() {
                    *m = (m.0.max(d.runs.len()), m.1.max(mem));
                }
                let bad = |what: String| {
                    seen.lock()
                        .unwrap()
                        .push(format!("{}: {what}", d.device_id))
                };
                if share > 1.0 + 1e-9 {
                    bad(format!("shares sum to {share}"));
                }
                if d.memory_total_mb.is_some_and(|total| mem > total) {
                    bad(format!("{mem} MiB reserved of {:?}", d.memory_total_mb));
                }
                if d.memory_reserved_mb
                    != (!d.runs.iter().all(|r| r.mem_mb.is_none())).then_some(mem)
                {
                    bad(format!(
                        "memory_reserved_mb {:?} != {mem}",
                        d.memory_reserved_mb
                    ));
                }
            }
            let running = sampler
                .list_runs(v1::ListRunsRequest {
                    states: vec![v1::RunState::Running.into()],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .runs;
            for r in running {
                let want = r.resources.as_ref().map_or(0, |q| q.gpus).max(1) as usize;
                if r.grants.len() != want {
                    seen.lock().unwrap().push(format!(
                        "r-{} runs on {} of {want} devices",
                        r.run_id,
                        r.grants.len()
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    stop.store(true, Ordering::Relaxed);
    join(sampling).await;
    let violations = violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "{violations:?}");
    let (most_runs, most_mem) = *packed.lock().unwrap();
    assert!(
        most_runs >= 2,
        "runs were packed onto one GPU (at most {most_runs} seen)"
    );
    assert!(
        most_mem > 3000,
        "two reservations shared a GPU (at most {most_mem} MiB seen)"
    );
    for run in runs.iter().filter(|r| r.run_id != oom) {
        assert_eq!(run.state(), v1::RunState::Succeeded, "{run:?}");
        let starts = grants_per_start(&events(&mut client, run.run_id).await);
        let want = run.resources.as_ref().unwrap();
        assert_eq!(
            starts[0].len(),
            want.gpus.max(1) as usize,
            "gang: all at once"
        );
        if want.gpus == 0 {
            assert_eq!(starts[0][0].mem_mb, want.gpu_mem_mb, "r-{}", run.run_id);
        } else {
            assert!(
                starts[0]
                    .iter()
                    .all(|g| g.share == 1.0 && g.mem_mb == Some(8000))
            );
        }
    }

    // The out-of-memory run: requeued once (not a retry: max_retries = 0) with twice the
    // memory, then failed by the second out-of-memory with the reason.
    let run = runs.iter().find(|r| r.run_id == oom).unwrap();
    assert_eq!(run.state(), v1::RunState::Failed, "{run:?}");
    assert_eq!(
        run.attempt, 2,
        "requeued once, not counted against max_retries = 0"
    );
    assert!(run.oom_requeued);
    assert_eq!(run.resources.as_ref().unwrap().gpu_mem_mb, Some(6000));
    let source = run.gpu_mem_source.clone().unwrap_or_default();
    assert!(source.starts_with("raised to 6000 MiB"), "{source}");
    let error = run.error.clone().unwrap_or_default();
    assert!(
        error.contains("ran out of GPU memory again (6000 MiB reserved)")
            && error.contains("CUDA out of memory"),
        "{error}"
    );
    let events = events(&mut client, oom).await;
    let starts = grants_per_start(&events);
    let mems: Vec<Option<u64>> = starts.iter().map(|g| g[0].mem_mb).collect();
    assert_eq!(
        mems,
        [Some(3000), Some(6000)],
        "the second grant reserves twice the memory"
    );
    let requeue = state_changes(&events)
        .into_iter()
        .find(|(from, to, _)| *from == v1::RunState::Running && *to == v1::RunState::Queued)
        .expect("a requeue event");
    assert!(
        requeue.2.contains(
            "attempt 1 ran out of GPU memory (3000 MiB reserved); requeued once with 6000 MiB"
        ),
        "{requeue:?}"
    );
}

fn epoch_report(run_id: u64, attempt: u32, peak: Option<u64>) -> v1::ReportEpochRequest {
    v1::ReportEpochRequest {
        run_id,
        attempt,
        metrics: Some(v1::EpochMetrics {
            stage: 1,
            epoch: 1,
            raw_json: r#"{"stage":1,"epoch":1,"train_loss":1.0,"lr":0.1,"images_per_sec":10.0}"#
                .into(),
            attempt,
            ..Default::default()
        }),
        peak_gpu_mem_mb: peak,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_measured_peak_is_remembered_across_restarts_and_reserved_for_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny_spec("peaked", 3, "[resources]\ngpu_share = 0.5\n");
    let server = InProcess::start(dir.path(), &gpus4(), Arc::new(SystemClock)).await;
    let mut client = server.client().await;
    let first = submit(&mut client, &spec).await.runs[0].run_id;
    let run = get_run(&mut client, first).await;
    assert_eq!(run.state(), v1::RunState::Running);
    assert_eq!(
        run.grants[0].mem_mb, None,
        "nothing measured yet, nothing reserved"
    );
    assert_eq!(run.gpu_mem_source, None);
    // The worker reports its first epoch with the peak it measured; a wild peak is refused.
    let mut worker = server.worker().await;
    let wild = worker
        .report_epoch(epoch_report(first, 1, Some(u64::MAX)))
        .await
        .expect_err("a peak beyond 1 TiB");
    assert_eq!(wild.code(), Code::InvalidArgument, "{wild}");
    worker
        .report_epoch(epoch_report(first, 1, Some(5000)))
        .await
        .expect("report");
    assert_eq!(
        get_run(&mut client, first).await.peak_gpu_mem_mb,
        Some(5000)
    );
    client
        .cancel_run(v1::CancelRunRequest {
            target: Some(Target::RunId(first)),
            reason: None,
        })
        .await
        .expect("cancel");
    server.shutdown().await;

    // After a restart the same config (a new run: the cancelled one is not reused) reserves
    // the measured peak plus 20%, and its grant carries it.
    let server = InProcess::start(dir.path(), &gpus4(), Arc::new(SystemClock)).await;
    let mut client = server.client().await;
    let second = submit(&mut client, &spec).await.runs[0].run_id;
    assert_ne!(second, first);
    let run = get_run(&mut client, second).await;
    assert_eq!(run.resources.as_ref().unwrap().gpu_mem_mb, Some(6000));
    assert_eq!(run.grants[0].mem_mb, Some(6000));
    let source = run.gpu_mem_source.clone().unwrap_or_default();
    assert_eq!(
        source,
        format!("measured: peak 5000 MiB of r-{first} (same config) + margin = 6000 MiB")
    );
    // A declared estimate wins over the measured peak (same config, the running one cancelled).
    client
        .cancel_run(v1::CancelRunRequest {
            target: Some(Target::RunId(second)),
            reason: None,
        })
        .await
        .expect("cancel");
    let declared = spec.replace("gpu_share = 0.5\n", "gpu_share = 0.5\ngpu_mem_mb = 1000\n");
    let third = submit(&mut client, &declared).await.runs[0].run_id;
    let run = get_run(&mut client, third).await;
    assert_eq!(run.resources.as_ref().unwrap().gpu_mem_mb, Some(1000));
    assert_eq!(run.gpu_mem_source.as_deref(), Some("declared in the spec"));
    // The devices show the reservation.
    let devices = client
        .list_devices(v1::ListDevicesRequest {})
        .await
        .unwrap()
        .into_inner()
        .devices;
    let reserved: Vec<u64> = devices
        .iter()
        .filter_map(|d| d.memory_reserved_mb)
        .collect();
    assert_eq!(reserved, [1000], "{devices:?}");
    server.shutdown().await;
}
