//! Core tests over the in-memory store with an injected clock and a recording executor.

use std::sync::{Arc, Mutex};

use super::*;
use crate::model::RunState;
use crate::scheduler::Inventory;
use crate::store::{EventKind, MemoryStore, RunFilter, Store};

const DEMO: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/digits-demo.toml"
));

struct Fixed;
impl Clock for Fixed {
    fn now(&self) -> crate::model::Millis {
        42
    }
}

/// Records, at each launch, the run's state as the store holds it then.
struct Recorder {
    store: Arc<MemoryStore>,
    seen: Mutex<Vec<(RunId, Option<RunState>)>>,
}

impl Executor for Recorder {
    fn launch(&self, run: &RunRecord) {
        let stored = self.store.get_run(run.id).ok().flatten().map(|r| r.state);
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((run.id, stored));
        }
    }
    fn cancel(&self, _run: &RunRecord) {}
}

fn daemon() -> (Daemon, Arc<Recorder>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let recorder = Arc::new(Recorder {
        store: store.clone(),
        seen: Mutex::new(Vec::new()),
    });
    let settings = DaemonSettings {
        inventory: Inventory::from_spec(&["cpu:3".to_string()]).expect("inventory"),
        ..DaemonSettings::default()
    };
    let d = Daemon::new(store.clone(), settings, Arc::new(Fixed), recorder.clone());
    (d, recorder, store)
}

#[test]
fn launches_happen_only_after_the_start_is_stored() {
    let (d, recorder, _) = daemon();
    let submitted = d.submit("demo", DEMO, "ada", Some(5)).expect("submit");
    assert_eq!(submitted.runs.len(), 13);
    let seen = recorder.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|(_, s)| *s == Some(RunState::Running)));
    let first = d.get_run(submitted.runs[0].0).expect("run");
    assert_eq!(
        (first.priority, first.submitted_at, first.attempt),
        (5, 42, 1)
    );
    assert_eq!(first.config_hash.len(), 64);
    let events = d.events(first.id, 0).expect("events");
    assert!(matches!(
        events[0].1.kind,
        EventKind::State {
            from: None,
            to: RunState::Queued,
            ..
        }
    ));
    assert!(matches!(
        events[1].1.kind,
        EventKind::Launch { attempt: 1, .. }
    ));
}

#[test]
fn an_invalid_grid_point_stores_nothing() {
    let (d, recorder, store) = daemon();
    let bad = DEMO.replace("\"lws\"", "\"no-such-method\"");
    let err = d.submit("demo", &bad, "ada", None).expect_err("invalid");
    assert!(
        matches!(err, CoreError::InvalidSpec { ref reason, .. } if reason.contains("no-such-method"))
    );
    assert!(
        store
            .list_runs(&RunFilter::default())
            .expect("list")
            .is_empty()
    );
    assert!(store.list_experiments(None, None).expect("list").is_empty());
    assert!(recorder.seen.lock().expect("lock").is_empty());
}

#[test]
fn cancelling_an_experiment_frees_every_device() {
    let (d, _, _) = daemon();
    let submitted = d.submit("demo", DEMO, "ada", None).expect("submit");
    let out = d
        .cancel(CancelTarget::Experiment(submitted.experiment), None)
        .expect("cancel");
    assert_eq!(out.cancelled.len(), 13);
    assert!(
        d.devices()
            .expect("devices")
            .iter()
            .all(|v| v.runs.is_empty() && v.free_share == 1.0)
    );
    let again = d
        .cancel(CancelTarget::Experiment(submitted.experiment), None)
        .expect("cancel again");
    assert_eq!(
        (again.cancelled.len(), again.already_finished.len()),
        (0, 13)
    );
    assert!(matches!(
        d.cancel(CancelTarget::Run(RunId(999)), None),
        Err(CoreError::RunNotFound(RunId(999)))
    ));
}

#[test]
fn only_the_owner_or_an_admin_may_cancel() {
    let (d, _, _) = daemon();
    let submitted = d.submit("demo", DEMO, "ada", None).expect("submit");
    let target = CancelTarget::Experiment(submitted.experiment);
    let actor = |name: &str, admin| crate::model::Actor {
        name: name.into(),
        admin,
    };
    let err = d
        .cancel_as(&actor("bob", false), target, None)
        .expect_err("bob is not the owner");
    assert!(
        matches!(err, CoreError::NotOwner { ref owner, .. } if owner == "ada"),
        "{err}"
    );
    let first = CancelTarget::Run(submitted.runs[0].0);
    let out = d
        .cancel_as(&actor("ada", false), first, None)
        .expect("the owner cancels");
    assert_eq!(out.cancelled, [submitted.runs[0].0]);
    let out = d
        .cancel_as(&actor("root", true), target, None)
        .expect("an admin cancels");
    // The rest, except what ended with the first run (it and any stage 2 waiting on it).
    assert!(!out.cancelled.is_empty());
    assert!(out.already_finished.contains(&submitted.runs[0].0));
    assert_eq!(out.cancelled.len() + out.already_finished.len(), 13);
}

#[test]
fn a_submission_past_the_queued_quota_is_refused_whole() {
    let (d, _, store) = daemon();
    d.set_max_queued_runs(Some(12));
    let err = d.submit("demo", DEMO, "ada", None).unwrap_err();
    assert!(
        matches!(&err, CoreError::QuotaExceeded { user, reason }
            if user == "ada" && reason.contains("0 queued + 13 new") && reason.contains("limit of 12")),
        "{err}"
    );
    assert!(store.list_experiments(None, None).expect("list").is_empty());
    assert!(
        store
            .list_runs(&RunFilter::default())
            .expect("list")
            .is_empty()
    );
    d.set_max_queued_runs(Some(13));
    let ok = d
        .submit("demo", DEMO, "ada", None)
        .expect("within the quota");
    assert_eq!(ok.experiment.0, 1, "the refused submission took no id");
}

/// A digits spec on `split_file`, with its balanced references.
fn split_spec(split_file: &std::path::Path, pin: &str) -> String {
    format!(
        "name = \"split\"\n[data]\nformat = \"digits\"\nsplit_file = {:?}\n{pin}\n\
         [train]\nepochs = 1\n[report]\nrelative_accuracy = true\n",
        split_file.display().to_string()
    )
}

#[test]
fn a_split_file_is_pinned_into_every_run_it_trains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("split.json");
    let ranks = |r: usize| {
        format!(
            "{{\"version\": 1, \"num_classes\": 10, \"ranks\": [{}]}}",
            vec![format!("[{r}]"); 10].join(",")
        )
    };
    std::fs::write(&file, ranks(0)).expect("write");
    let sha = cauda_plugins::data::split_file::sha256_hex(ranks(0).as_bytes());
    let (d, _, _) = daemon();
    let first = d
        .submit("s", &split_spec(&file, ""), "ada", None)
        .expect("submit");
    // The run and its balanced reference (CE on the balanced variant; the method is CE too, so
    // both references are one run) carry the file's hash.
    assert_eq!(first.runs.len(), 2, "{:?}", first.runs);
    let hashes: Vec<String> = first
        .runs
        .iter()
        .map(|(id, _)| {
            let run = d.get_run(*id).expect("run");
            assert!(run.config_json.contains(&sha), "{}", run.config_json);
            run.config_hash
        })
        .collect();
    // Other content at the same path is another run.
    std::fs::write(&file, ranks(1)).expect("write");
    let second = d
        .submit("s", &split_spec(&file, ""), "ada", None)
        .expect("submit");
    let run = d.get_run(second.runs[0].0).expect("run");
    assert!(!hashes.contains(&run.config_hash));
    // A pin that is not the file's hash is refused, naming the key.
    let pinned = format!("split_file_sha256 = \"{sha}\"");
    match d.submit("s", &split_spec(&file, &pinned), "ada", None) {
        Err(CoreError::InvalidSpec { key, reason, .. }) => {
            assert_eq!(key, "data.split_file");
            assert!(reason.contains("changed since"), "{reason}");
        }
        Err(other) => panic!("{other}"),
        Ok(s) => panic!("accepted: {:?}", s.runs),
    }
}

/// A burst of concurrent submissions schedules once per burst (`submit` leaves its pass to a
/// submission waiting behind it), yet when every call has returned each run was seen by a
/// pass: three are running (the three CPU slots) and every queued one has its reason.
#[test]
fn a_burst_of_submissions_leaves_no_run_unscheduled() {
    let (d, recorder, store) = daemon();
    let spec = |i: usize| {
        format!(
            "name = \"b{i}\"\nmethod = \"ce\"\n[data]\nformat = \"digits\"\n[model]\n\
             backbone = \"mlp\"\n[train]\nepochs = 1\nseed = {i}\n"
        )
    };
    std::thread::scope(|s| {
        for i in 0..16 {
            let (d, spec) = (&d, spec(i));
            s.spawn(move || d.submit("burst", &spec, "ada", None).expect("submit"));
        }
    });
    let runs = store.list_runs(&RunFilter::default()).expect("runs");
    assert_eq!(runs.len(), 16);
    let running = runs.iter().filter(|r| r.state == RunState::Running).count();
    assert_eq!(running, 3, "every slot taken");
    assert_eq!(recorder.seen.lock().expect("lock").len(), 3);
    let shown = d.list_runs(&RunFilter::default()).expect("runs");
    for run in shown.iter().filter(|r| r.state == RunState::Queued) {
        assert!(
            run.pending_reason.is_some(),
            "{} was never seen by a scheduling pass",
            run.id
        );
    }
}

/// Pending reasons are the last pass's, shown by every read and never written to the store;
/// they follow the queue as it moves.
#[test]
fn pending_reasons_follow_the_queue_in_memory_and_are_not_stored() {
    let (d, _, store) = daemon();
    let spec = "name = \"q\"\nmethod = \"ce\"\n[data]\nformat = \"digits\"\n[model]\n\
                backbone = \"mlp\"\n[train]\nepochs = 1\n\
                [sweep]\n\"train.seed\" = [1, 2, 3, 4, 5]\n";
    let ids: Vec<RunId> = d
        .submit("q", spec, "ada", None)
        .expect("submit")
        .runs
        .iter()
        .map(|r| r.0)
        .collect();
    let shown = |id: RunId| d.get_run(id).expect("run").pending_reason;
    let (fourth, fifth) = (ids[3], ids[4]);
    let before = (
        shown(fourth).expect("explained"),
        shown(fifth).expect("explained"),
    );
    assert_ne!(
        before.0, before.1,
        "each says how many runs are ahead of it"
    );
    for id in [fourth, fifth] {
        let stored = store.get_run(id).expect("get").expect("stored");
        assert_eq!(stored.state, RunState::Queued);
        assert_eq!(
            stored.pending_reason, None,
            "run {id}: a pass's reason is not stored"
        );
    }
    let listed = d.list_run_briefs(&RunFilter::default()).expect("briefs");
    let brief = listed.iter().find(|b| b.id == fifth).expect("listed");
    assert_eq!(
        brief.pending_reason.as_ref(),
        Some(&before.1),
        "listings show it too"
    );
    // A slot frees: the fourth starts, the fifth moves up and its reason changes.
    d.cancel(CancelTarget::Run(ids[0]), None).expect("cancel");
    assert_eq!(d.get_run(fourth).expect("run").state, RunState::Running);
    assert_eq!(shown(fourth), None, "a running run has no pending reason");
    let after = shown(fifth).expect("explained");
    assert_ne!(after, before.1, "the fifth's reason follows the queue");
    assert_eq!(
        after, before.0,
        "it now has as many runs ahead as the fourth had"
    );
}
