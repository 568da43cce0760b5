//! The attempt life cycle over the in-memory store with a settable clock: fencing, idempotent
//! reports, retries counted against `max_retries`, exits after a finish, lost workers found by
//! the ticker, recovery at start-up, and the best-checkpoint flag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::model::RunState;
use crate::scheduler::Inventory;
use crate::store::{EventKind, MemoryStore, Store};

const SPEC: &str = r#"
name = "t"
method = "ce"
[data]
format = "digits"
[model]
backbone = "mlp"
[train]
epochs = 3
[sweep]
"train.seed" = [1, 2]
"#;

#[derive(Default)]
struct Clock0(AtomicU64);
impl Clock for Clock0 {
    fn now(&self) -> crate::model::Millis {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
struct Calls {
    launched: Mutex<Vec<(RunId, u32)>>,
    cancelled: Mutex<Vec<(RunId, u32)>>,
}
impl Executor for Calls {
    fn launch(&self, run: &RunRecord) {
        self.launched.lock().unwrap().push((run.id, run.attempt));
    }
    fn cancel(&self, run: &RunRecord) {
        self.cancelled.lock().unwrap().push((run.id, run.attempt));
    }
}

fn setup(slots: &str, retries: u32) -> (Arc<Daemon>, Arc<Calls>, Arc<Clock0>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let calls = Arc::new(Calls::default());
    let clock = Arc::new(Clock0::default());
    let settings = DaemonSettings {
        inventory: Inventory::from_spec(&[slots.to_string()]).unwrap(),
        max_retries: retries,
        ..DaemonSettings::default()
    };
    let d = Arc::new(Daemon::new(
        store.clone(),
        settings,
        clock.clone(),
        calls.clone(),
    ));
    (d, calls, clock, store)
}

const EPOCH: &str = r#"{"stage":1,"epoch":1,"train_loss":1.0,"lr":0.1,"images_per_sec":10.0}"#;

/// The report of an engine record given as its JSON.
fn reported(json: &str) -> crate::core::ReportedEpoch {
    crate::core::ReportedEpoch::of(serde_json::from_str(json).unwrap())
}

/// A run's summary as the engine writes it.
fn summary() -> Box<cauda_plugins::train::RunSummary> {
    let json = r#"{"method":"ce","class_counts":[5,1],"split_hash":"h","epochs":2,
        "images_per_sec":10.0,"best_test_top1":0.5,"val_selected_top1":null,
        "last":{"test_top1":0.5,"many":null,"medium":null,"few":null,"per_class":[1.0,0.0]}}"#;
    Box::new(serde_json::from_str(json).unwrap())
}

fn epoch_json(epoch: u32, top1: Option<f64>) -> String {
    let eval = top1.map_or(String::new(), |t| {
        format!(
            r#","eval":{{"test_top1":{t},"many":null,"medium":null,"few":null,"per_class":[]}}"#
        )
    });
    format!(
        r#"{{"stage":1,"epoch":{epoch},"train_loss":1.0,"lr":0.1,"images_per_sec":10.0{eval}}}"#
    )
}

#[test]
fn only_the_current_attempt_writes_and_reports_are_idempotent() {
    let (d, _, _, store) = setup("cpu:1", 2);
    let runs = d.submit("t", SPEC, "ada", None).unwrap().runs;
    let (a, b) = (runs[0].0, runs[1].0);
    assert!(matches!(
        d.register_worker(a, 2, 1, "h"),
        Err(CoreError::StaleAttempt { current: 1, .. })
    ));
    assert!(matches!(
        d.register_worker(b, 0, 1, "h"),
        Err(CoreError::StaleAttempt {
            state: RunState::Queued,
            ..
        })
    ));
    assert!(matches!(
        d.register_worker(RunId(99), 1, 1, "h"),
        Err(CoreError::RunNotFound(_))
    ));
    let start = d.register_worker(a, 1, 7, "h").unwrap();
    let back = cauda_plugins::spec::ResolvedRun::from_json("t", &start.config_json).unwrap();
    assert_eq!(cauda_plugins::train::config_hash(&back), start.config_hash);
    assert_eq!((start.resume, start.epochs_done), (None, 0));

    assert!(!d.report_epoch(a, 1, reported(EPOCH)).unwrap());
    assert!(
        d.report_epoch(a, 1, reported(EPOCH)).unwrap(),
        "a resent epoch is a duplicate"
    );
    assert!(matches!(
        d.report_epoch(
            a,
            1,
            crate::core::ReportedEpoch {
                epoch: 2,
                ..reported(EPOCH)
            }
        ),
        Err(CoreError::BadReport { .. })
    ));
    let stored = store.metrics(a).unwrap();
    assert_eq!(stored.len(), 1);
    let back = crate::model::StoredEpoch::decode(&stored[0].doc).unwrap();
    assert_eq!((back.attempt, back.record), (1, reported(EPOCH).record));
    let epochs = d
        .events(a, 0)
        .unwrap()
        .into_iter()
        .filter(|(_, e)| matches!(e.kind, EventKind::Epoch { .. }))
        .count();
    assert_eq!(epochs, 1, "one epoch event, not one per report");

    let bytes = b"CAUDACK1 not really".to_vec();
    let wrong = crate::store::sha256_hex(b"other");
    assert!(matches!(
        d.store_checkpoint(a, 1, 1, &wrong, &bytes),
        Err(CoreError::CorruptUpload { .. })
    ));
    assert!(
        store.list_checkpoints(a).unwrap().is_empty(),
        "nothing stored"
    );
    let digest = crate::store::sha256_hex(&bytes);
    assert!(!d.store_checkpoint(a, 1, 1, &digest, &bytes).unwrap());
    assert!(d.store_checkpoint(a, 1, 1, &digest, &bytes).unwrap());
    assert_eq!(d.resume_checkpoint(a, 1).unwrap().unwrap().1, bytes);

    assert!(!d.heartbeat(a, 1).unwrap());
    d.cancel(CancelTarget::Run(a), None).unwrap();
    assert!(
        d.heartbeat(a, 1).unwrap(),
        "a cancelled attempt is told to stop"
    );
    assert!(matches!(
        d.report_epoch(a, 1, reported(EPOCH)),
        Err(CoreError::StaleAttempt { .. })
    ));
}

#[test]
fn failures_are_retried_until_max_retries_then_the_run_fails() {
    let (d, calls, _, _) = setup("cpu:1", 1);
    let a = d.submit("t", SPEC, "ada", None).unwrap().runs[0].0;
    d.finish(a, 1, Ending::Failed("boom".into())).unwrap();
    let run = d.get_run(a).unwrap();
    assert_eq!(
        (run.state, run.attempt, run.failures),
        (RunState::Running, 2, 1)
    );
    assert_eq!(calls.launched.lock().unwrap()[..2], [(a, 1), (a, 2)]);
    // The old attempt's process exits after its Finish: nothing changes.
    d.worker_exited(a, 1, &ProcessExit::default()).unwrap();
    assert_eq!(d.get_run(a).unwrap().attempt, 2);
    // The retry dies without a Finish: the retries are spent, the run fails with the status.
    let exit = ProcessExit {
        code: None,
        signal: Some(9),
        stderr_tail: "last words".into(),
    };
    d.worker_exited(a, 2, &exit).unwrap();
    let run = d.get_run(a).unwrap();
    assert_eq!(run.state, RunState::Failed);
    let error = run.error.unwrap();
    assert!(
        error.contains("killed by signal 9") && error.contains("last words"),
        "{error}"
    );
    assert!(matches!(
        d.finish(a, 2, Ending::Succeeded(summary())),
        Err(CoreError::StaleAttempt { .. })
    ));
    // The freed slot went to the second run.
    assert_eq!(calls.launched.lock().unwrap().last().unwrap().1, 1);
}

#[test]
fn a_silent_worker_is_lost_after_the_timeout_and_retried() {
    let (d, calls, clock, _) = setup("cpu:1", 2);
    let a = d.submit("t", SPEC, "ada", None).unwrap().runs[0].0;
    clock.0.store(5_000, Ordering::SeqCst);
    d.tick(10_000).unwrap();
    assert_eq!(d.get_run(a).unwrap().attempt, 1, "not yet");
    d.heartbeat(a, 1).unwrap();
    clock.0.store(14_000, Ordering::SeqCst);
    d.tick(10_000).unwrap();
    assert_eq!(d.get_run(a).unwrap().attempt, 1, "the heartbeat counted");
    clock.0.store(30_000, Ordering::SeqCst);
    d.tick(10_000).unwrap();
    let run = d.get_run(a).unwrap();
    assert_eq!((run.state, run.attempt), (RunState::Running, 2));
    assert_eq!(
        *calls.cancelled.lock().unwrap(),
        [(a, 1)],
        "the lost worker is stopped"
    );
    assert!(run.error.unwrap().contains("no heartbeat for 25 s"));
}

#[test]
fn recovery_requeues_running_runs_keeps_finished_ones_and_relaunches() {
    let (d, _, _, store) = setup("cpu:1", 0);
    let runs = d.submit("t", SPEC, "ada", None).unwrap().runs;
    // Another recipe (identical ones would be reused, not queued).
    let spec2 = SPEC.replace("epochs = 3", "epochs = 4");
    let later = d.submit("u", &spec2, "ada", None).unwrap().runs;
    d.finish(runs[0].0, 1, Ending::Succeeded(summary()))
        .unwrap();
    // Run 2 is now running (attempt 1); a new daemon over the same store takes over.
    assert_eq!(d.get_run(runs[1].0).unwrap().state, RunState::Running);
    let calls = Arc::new(Calls::default());
    let settings = DaemonSettings {
        inventory: Inventory::from_spec(&["cpu:1".to_string()]).unwrap(),
        ..DaemonSettings::default()
    };
    let d2 = Daemon::new(store, settings, Arc::new(Clock0::default()), calls.clone());
    assert_eq!(d2.recover().unwrap(), [runs[1].0]);
    assert_eq!(
        *calls.launched.lock().unwrap(),
        [(runs[1].0, 2)],
        "resumed first, as attempt 2"
    );
    assert_eq!(d2.get_run(runs[0].0).unwrap().state, RunState::Succeeded);
    assert_eq!(d2.get_run(later[0].0).unwrap().state, RunState::Queued);
    assert_eq!(
        d2.get_run(runs[1].0).unwrap().failures,
        0,
        "a restart is not a failure"
    );
}

#[test]
fn the_best_flag_follows_the_stored_test_accuracy() {
    let (d, _, _, store) = setup("cpu:1", 0);
    let a = d.submit("t", SPEC, "ada", None).unwrap().runs[0].0;
    for (epoch, top1) in [(1, 0.5), (2, 0.7), (3, 0.6)] {
        d.report_epoch(a, 1, reported(&epoch_json(epoch, Some(top1))))
            .unwrap();
        let bytes = format!("ckpt {epoch}").into_bytes();
        let digest = crate::store::sha256_hex(&bytes);
        d.store_checkpoint(a, 1, epoch, &digest, &bytes).unwrap();
    }
    let best: Vec<u32> = store
        .list_checkpoints(a)
        .unwrap()
        .iter()
        .filter(|m| m.is_best)
        .map(|m| m.epoch)
        .collect();
    assert_eq!(best, [2]);
}

#[test]
fn a_reported_epoch_is_broadcast_once_with_its_stored_seq() {
    let (d, _, _, _) = setup("cpu:1", 2);
    let a = d.submit("t", SPEC, "ada", None).unwrap().runs[0].0;
    d.register_worker(a, 1, 7, "h").unwrap();
    let mut live = d.subscribe();
    assert!(!d.report_epoch(a, 1, reported(EPOCH)).unwrap());
    assert!(d.report_epoch(a, 1, reported(EPOCH)).unwrap());
    let (run, seq, event) = live.try_recv().unwrap();
    assert_eq!(run, a);
    assert!(matches!(
        event.kind,
        EventKind::Epoch {
            epoch: 1,
            stage: 1,
            attempt: 1
        }
    ));
    let stored = d.events(a, seq).unwrap();
    assert_eq!(
        stored.first().map(|(s, e)| (*s, e.clone())),
        Some((seq, event))
    );
    assert!(live.try_recv().is_err(), "a duplicate broadcasts nothing");
}

#[test]
fn a_failed_run_is_not_reused_and_a_succeeded_one_is() {
    let (d, _, _, _) = setup("cpu:2", 0);
    let first = d.submit("t", SPEC, "ada", None).unwrap();
    let (a, b) = (first.runs[0].0, first.runs[1].0);
    d.finish(a, 1, Ending::Failed("boom".into())).unwrap();
    d.finish(b, 1, Ending::Succeeded(summary())).unwrap();
    let again = d.submit("t", SPEC, "ada", None).unwrap();
    assert_eq!(
        again.runs.len(),
        1,
        "the failed run's config is trained again"
    );
    assert_eq!(again.reused.iter().map(|r| r.0).collect::<Vec<_>>(), [b]);
    // The new run is now the one to reuse for that config.
    let third = d.submit("t", SPEC, "ada", None).unwrap();
    assert!(third.runs.is_empty());
    assert_eq!(third.reused.len(), 2);
}

#[test]
fn an_out_of_memory_death_is_requeued_once_with_more_memory_then_fails() {
    let (d, calls, _clock, _store) = setup("gpu:0@8000", 0);
    let spec = SPEC
        .replace("[sweep]\n\"train.seed\" = [1, 2]\n", "")
        .replace(
            "epochs = 3\n",
            "epochs = 3\n[resources]\ngpu_share = 0.5\ngpu_mem_mb = 3000\n",
        );
    let id = d.submit("t.toml", &spec, "u", None).unwrap().runs[0].0;
    let run = d.get_run(id).unwrap();
    assert_eq!(run.grants[0].mem_mb, Some(3000));
    assert_eq!(
        run.gpu_memory.source.as_deref(),
        Some("declared in the spec")
    );
    d.record_peak(id, 1, 3500).unwrap();
    assert!(matches!(
        d.record_peak(id, 1, u64::MAX),
        Err(CoreError::BadReport { .. })
    ));
    // The process dies; its stderr says CUDA ran out of memory.
    let exit = ProcessExit {
        code: Some(1),
        signal: None,
        stderr_tail:
            "thread 'main' panicked: Torch(\"CUDA out of memory. Tried to allocate 2.00 GiB\")"
                .into(),
    };
    d.worker_exited(id, 1, &exit).unwrap();
    let run = d.get_run(id).unwrap();
    assert_eq!(
        (run.state, run.attempt, run.failures),
        (RunState::Running, 2, 0)
    );
    // 1.5 x the 3500 MiB peak (5250) is less than twice the 3000 MiB reservation.
    assert_eq!(run.request.gpu_mem_mb, Some(6000));
    assert_eq!(
        run.grants[0].mem_mb,
        Some(6000),
        "the grant carries the larger reservation"
    );
    assert!(run.gpu_memory.oom_requeued);
    assert_eq!(run.gpu_memory.peak_mb, Some(3500));
    let source = run.gpu_memory.source.clone().unwrap();
    assert!(
        source.starts_with("raised to 6000 MiB (twice its reservation)"),
        "{source}"
    );
    let requeue = d
        .events(id, 0)
        .unwrap()
        .into_iter()
        .find_map(|(_, e)| match e.kind {
            EventKind::State {
                to: RunState::Queued,
                reason: Some(r),
                ..
            } if r.contains("out of GPU memory") => Some(r),
            _ => None,
        })
        .expect("the requeue is an event with its reason");
    assert!(
        requeue.contains(
            "attempt 1 ran out of GPU memory (3000 MiB reserved); requeued once with 6000 MiB"
        ),
        "{requeue}"
    );
    // A second out-of-memory (the worker's own report) fails it, with the reason.
    d.finish(id, 2, Ending::OutOfMemory("CUDA out of memory".into()))
        .unwrap();
    let run = d.get_run(id).unwrap();
    assert_eq!(run.state, RunState::Failed);
    let error = run.error.unwrap();
    assert!(
        error.contains("ran out of GPU memory again (6000 MiB reserved)"),
        "{error}"
    );
    assert_eq!(calls.launched.lock().unwrap().len(), 2, "no third attempt");
}

#[test]
fn an_out_of_memory_cpu_run_is_an_ordinary_failure() {
    let (d, _calls, _clock, _store) = setup("cpu:1", 1);
    let id = d.submit("t.toml", SPEC, "u", None).unwrap().runs[0].0;
    d.finish(id, 1, Ending::OutOfMemory("out of memory".into()))
        .unwrap();
    let run = d.get_run(id).unwrap();
    assert_eq!(
        (run.state, run.failures),
        (RunState::Running, 1),
        "retried as a failure"
    );
    assert!(!run.gpu_memory.oom_requeued);
}
