//! Runs end to end: the real `caudad serve` binary schedules a grid onto CPU slots, real
//! `caudad work` processes train tiny real runs on the embedded digits and stream every epoch
//! and checkpoint back; cancel kills the worker and frees its slot; a worker killed with
//! SIGKILL is retried from its checkpoint; a run whose training fails is retried, then failed
//! with the reason.

use crate::common;

use std::time::Duration;

use cauda_proto::v1::{self, cancel_run_request::Target};
use common::*;

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_trains_to_the_end_in_worker_processes() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:2\"]\n");
    let mut client = daemon.client().await;
    let spec = tiny_spec(
        "grid",
        3,
        "[sweep]\nmethod = [\"ce\", \"focal\", \"balanced-softmax\"]\n",
    );
    let submitted = submit(&mut client, &spec).await;
    let ids: Vec<u64> = submitted.runs.iter().map(|r| r.run_id).collect();
    assert_eq!(ids.len(), 3);
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    for run in &runs {
        assert_eq!(run.state(), v1::RunState::Succeeded, "{run:?}");
        assert_eq!(run.attempt, 1);
        assert_eq!(run.epochs_done, 3);
        let summary: serde_json::Value = serde_json::from_str(&run.summary_json).unwrap();
        assert!(
            summary["last"]["test_top1"].as_f64().unwrap() > 0.2,
            "{summary}"
        );
        // The typed summary says what its JSON says.
        let typed = run
            .summary
            .as_ref()
            .expect("a succeeded run's typed summary");
        let last = typed.last.as_ref().unwrap();
        assert_eq!(
            last.test_top1,
            summary["last"]["test_top1"].as_f64().unwrap() as f32
        );
        assert_eq!(typed.epochs, 3);
        assert_eq!(
            typed.class_counts.len(),
            summary["class_counts"].as_array().unwrap().len()
        );
        assert_eq!(run.method, summary["method"].as_str().unwrap());

        let metrics = epochs(&mut client, run.run_id).await;
        let numbers: Vec<u32> = metrics.iter().map(|m| m.epoch).collect();
        assert_eq!(numbers, [1, 2, 3], "contiguous from 1");
        assert!(metrics.iter().all(|m| m.attempt == 1 && m.stage == 1));
        assert!(metrics[2].eval.as_ref().unwrap().test_top1 > 0.0);

        // The whole story replays: queued, running on a granted slot, three epochs whose
        // metrics are the stored ones, the worker's own lines, succeeded.
        let events = events(&mut client, run.run_id).await;
        let states = state_changes(&events);
        assert_eq!(
            states.iter().map(|s| s.1).collect::<Vec<_>>(),
            [
                v1::RunState::Queued,
                v1::RunState::Running,
                v1::RunState::Succeeded
            ]
        );
        let running = first_grants(&events);
        assert_eq!(running.len(), 1);
        assert!(running[0].device_id.starts_with("cpu:"));
        let streamed: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.event {
                Some(v1::run_event::Event::Epoch(m)) => Some(m.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(streamed, metrics);
        let logs = log_lines(&events);
        assert!(
            logs.iter().any(|l| l.starts_with("epoch 3/3 stage 1")),
            "{logs:?}"
        );
        assert!(
            logs.iter()
                .any(|l| l.starts_with("run ") && l.contains("CUDA_VISIBLE_DEVICES=\"\"")),
            "the worker sees no GPU: {logs:?}"
        );

        // The last checkpoint streams back whole, its digest as announced.
        let mut stream = client
            .get_checkpoint(v1::GetCheckpointRequest {
                run_id: run.run_id,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut meta = None;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await.unwrap() {
            match chunk.part {
                Some(v1::checkpoint_chunk::Part::Meta(m)) => meta = Some(m),
                Some(v1::checkpoint_chunk::Part::Data(d)) => bytes.extend_from_slice(&d),
                None => {}
            }
        }
        let meta = meta.unwrap();
        assert_eq!((meta.epoch, meta.stage, meta.attempt), (3, 1, 1));
        assert_eq!(bytes.len() as u64, meta.total_bytes);
        assert_eq!(caudad::store::sha256_hex(&bytes), meta.sha256);
        assert!(bytes.starts_with(b"CAUDACK1"));
    }
    assert!(daemon.workers().is_empty(), "every worker exited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_the_worker_and_frees_its_slot_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:1\"]\nkill_grace_ms = 2000\n");
    let mut client = daemon.client().await;
    let spec = tiny_spec("long", 2000, "[sweep]\n\"train.seed\" = [1, 2]\n");
    let ids = submit_ids(&mut client, &spec).await;
    let first = ids[0];
    let pid = wait_for(LIMIT, "the first run's worker to train an epoch", || {
        let mut c = client.clone();
        let workers = daemon.workers();
        async move {
            let worker = workers.iter().find(|w| w.1 == first).copied()?;
            (!epochs(&mut c, first).await.is_empty()).then_some(worker.0)
        }
    })
    .await;
    let second = get_run(&mut client, ids[1]).await;
    assert_eq!(second.state(), v1::RunState::Queued);
    assert!(second.pending_reason.unwrap().contains("no CPU slot free"));

    client
        .cancel_run(v1::CancelRunRequest {
            target: Some(Target::RunId(first)),
            reason: Some("test".into()),
        })
        .await
        .unwrap();
    // The slot is free at once: the second run starts while the first worker may still exit.
    let run = get_run(&mut client, first).await;
    assert_eq!(run.state(), v1::RunState::Cancelled);
    assert!(run.grants.is_empty());
    let second = ids[1];
    wait_for(LIMIT, "the second run to start", || {
        let mut c = client.clone();
        async move {
            let r = get_run(&mut c, second).await;
            (r.state() == v1::RunState::Running).then_some(())
        }
    })
    .await;
    wait_for(
        Duration::from_secs(10),
        "the cancelled worker to exit",
        || async move { (!alive(pid)).then_some(()) },
    )
    .await;
    client
        .cancel_run(v1::CancelRunRequest {
            target: Some(Target::ExperimentId(1)),
            reason: None,
        })
        .await
        .unwrap();
    wait_for(Duration::from_secs(10), "every worker to exit", || {
        let workers = daemon.workers();
        async move { workers.is_empty().then_some(()) }
    })
    .await;
    let events = events(&mut client, first).await;
    let last = state_changes(&events).pop().unwrap();
    assert_eq!(last.1, v1::RunState::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_retried_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:1\"]\nmax_retries = 2\n");
    let mut client = daemon.client().await;
    let total = 60;
    let id = submit(&mut client, &tiny_spec("retry", total, ""))
        .await
        .runs[0]
        .run_id;
    let pid = wait_for(LIMIT, "three epochs", || {
        let mut c = client.clone();
        let workers = daemon.workers();
        async move {
            let worker = workers.iter().find(|w| w.1 == id).copied()?;
            (epochs(&mut c, id).await.len() >= 3).then_some(worker.0)
        }
    })
    .await;
    kill9(pid);
    let run = wait_all_done(&mut client, &[id], LIMIT).await.remove(0);
    assert_eq!(run.state(), v1::RunState::Succeeded, "{run:?}");
    assert_eq!(run.attempt, 2, "one retry");
    let metrics = epochs(&mut client, id).await;
    let numbers: Vec<u32> = metrics.iter().map(|m| m.epoch).collect();
    assert_eq!(
        numbers,
        (1..=total).collect::<Vec<_>>(),
        "contiguous, none repeated"
    );
    assert_eq!(metrics[0].attempt, 1);
    assert_eq!(metrics.last().unwrap().attempt, 2);
    let events = events(&mut client, id).await;
    let retry = state_changes(&events)
        .into_iter()
        .find(|s| s.0 == v1::RunState::Running && s.1 == v1::RunState::Queued)
        .expect("a retry");
    assert!(retry.2.contains("killed by signal 9"), "{}", retry.2);
    assert!(retry.2.contains("retry 1 of 2"), "{}", retry.2);
    let logs = log_lines(&events);
    let resumed = logs
        .iter()
        .find(|l| l.contains("attempt 2: worker pid") && l.contains("resuming after epoch"))
        .expect("attempt 2 resumed from a checkpoint");
    let after: u32 = resumed
        .split("resuming after epoch ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(after >= 2, "{resumed}");
    assert!(
        metrics
            .iter()
            .filter(|m| m.epoch <= after)
            .all(|m| m.attempt == 1),
        "epochs before the checkpoint were not trained again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_train_is_retried_then_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:1\"]\nmax_retries = 1\n");
    let mut client = daemon.client().await;
    let spec = tiny_spec("broken", 3, "").replace(
        "format = \"digits\"",
        "format = \"idx\"\npath = \"/usr/share/datasets/nonexistent/cauda-test-data\"",
    );
    let id = submit(&mut client, &spec).await.runs[0].run_id;
    let run = wait_all_done(&mut client, &[id], LIMIT).await.remove(0);
    assert_eq!(run.state(), v1::RunState::Failed);
    assert_eq!(run.attempt, 2, "one retry, then failed");
    let error = run.error.unwrap();
    assert!(error.contains("/nonexistent/cauda-test-data"), "{error}");
    let states = state_changes(&events(&mut client, id).await);
    assert_eq!(
        states.iter().map(|s| s.1).collect::<Vec<_>>(),
        [
            v1::RunState::Queued,
            v1::RunState::Running,
            v1::RunState::Queued,
            v1::RunState::Running,
            v1::RunState::Failed
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_dropped_in_the_inbox_is_submitted_and_trains() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    let config = format!(
        "devices = [\"cpu:1\"]\ninbox = {:?}\n",
        inbox.display().to_string()
    );
    let daemon = Caudad::start(dir.path(), &config);
    let mut client = daemon.client().await;
    let bad = tiny_spec("bad", 2, "").replace("method = \"ce\"", "method = \"nope\"");
    std::fs::write(inbox.join("bad.toml"), bad).unwrap();
    std::fs::write(inbox.join("tiny.toml"), tiny_spec("dropped", 2, "")).unwrap();
    let run = wait_for(LIMIT, "the dropped spec to be submitted", || {
        let mut c = client.clone();
        async move {
            let runs = c
                .list_runs(v1::ListRunsRequest::default())
                .await
                .ok()?
                .into_inner()
                .runs;
            runs.into_iter().next()
        }
    })
    .await;
    assert_eq!(run.name, "dropped");
    let run = wait_all_done(&mut client, &[run.run_id], LIMIT)
        .await
        .remove(0);
    assert_eq!(run.state(), v1::RunState::Succeeded);
    assert!(inbox.join("submitted/tiny.toml").exists());
    let error = std::fs::read_to_string(inbox.join("rejected/bad.toml.error")).unwrap();
    assert!(
        error.contains("method") && error.contains("nope"),
        "{error}"
    );
}
