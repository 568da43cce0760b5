//! Grouped submissions (`submit_group`) over a store that can hold its first commit back (so
//! that the submissions behind it queue into one group) and refuse a marked submission's write:
//! a group reuses its own runs, counts its own runs against the queued quota, and when its
//! transaction fails each submission is stored or refused on its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::model::{ExperimentId, ExperimentRecord, RunState};
use crate::scheduler::Inventory;
use crate::store::{
    CheckpointMeta, Event, MemoryStore, MetricPoint, RunFilter, Store, StoreError, Ticket, WriteOp,
};

/// A `MemoryStore` whose first commit waits until the test opens it (the submissions arriving
/// meanwhile form the next group) and which refuses any commit storing an experiment named
/// `poison`.
#[derive(Default)]
struct Gated {
    inner: MemoryStore,
    entered: AtomicBool,
    open: AtomicBool,
    commits: AtomicUsize,
    /// While set, no write becomes durable (a full disk: the flush fails).
    full: AtomicBool,
}

impl Store for Gated {
    fn next_run_id(&self) -> crate::store::Result<RunId> {
        self.inner.next_run_id()
    }
    fn next_experiment_id(&self) -> crate::store::Result<ExperimentId> {
        self.inner.next_experiment_id()
    }
    fn commit_applied(&self, ops: &[WriteOp]) -> crate::store::Result<(Vec<u64>, Ticket)> {
        if !self.entered.swap(true, Ordering::SeqCst) {
            while !self.open.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        let poisoned = ops
            .iter()
            .any(|op| matches!(op, WriteOp::PutExperiment(e) if e.name == "poison"));
        if poisoned {
            return Err(StoreError::Invalid {
                op: "commit",
                reason: "refused by the test".into(),
            });
        }
        self.inner.commit_applied(ops)
    }
    fn wait_durable(&self, ticket: Ticket) -> crate::store::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(StoreError::DiskFull {
                op: "flush",
                path: "test".into(),
                detail: "the test's disk is full".into(),
            });
        }
        self.inner.wait_durable(ticket)
    }
    fn get_experiment(&self, id: ExperimentId) -> crate::store::Result<Option<ExperimentRecord>> {
        self.inner.get_experiment(id)
    }
    fn list_experiments(
        &self,
        after: Option<ExperimentId>,
        limit: Option<usize>,
    ) -> crate::store::Result<Vec<ExperimentRecord>> {
        self.inner.list_experiments(after, limit)
    }
    fn get_run(&self, id: RunId) -> crate::store::Result<Option<RunRecord>> {
        self.inner.get_run(id)
    }
    fn list_runs(&self, filter: &RunFilter) -> crate::store::Result<Vec<RunRecord>> {
        self.inner.list_runs(filter)
    }
    fn events(&self, run: RunId, from_seq: u64) -> crate::store::Result<Vec<(u64, Event)>> {
        self.inner.events(run, from_seq)
    }
    fn append_metric(
        &self,
        run: RunId,
        epoch: u32,
        stage: u8,
        doc: &[u8],
    ) -> crate::store::Result<bool> {
        self.inner.append_metric(run, epoch, stage, doc)
    }
    fn append_metric_with_event(
        &self,
        run: RunId,
        epoch: u32,
        stage: u8,
        doc: &[u8],
        event: &Event,
    ) -> crate::store::Result<Option<u64>> {
        self.inner
            .append_metric_with_event(run, epoch, stage, doc, event)
    }
    fn metrics(&self, run: RunId) -> crate::store::Result<Vec<MetricPoint>> {
        self.inner.metrics(run)
    }
    fn put_checkpoint(
        &self,
        run: RunId,
        attempt: u32,
        epoch: u32,
        bytes: &[u8],
        is_best: bool,
    ) -> crate::store::Result<CheckpointMeta> {
        self.inner
            .put_checkpoint(run, attempt, epoch, bytes, is_best)
    }
    fn list_checkpoints(&self, run: RunId) -> crate::store::Result<Vec<CheckpointMeta>> {
        self.inner.list_checkpoints(run)
    }
    fn checkpoint_chunk(
        &self,
        run: RunId,
        epoch: u32,
        index: u32,
    ) -> crate::store::Result<Option<Vec<u8>>> {
        self.inner.checkpoint_chunk(run, epoch, index)
    }
    fn checkpoint(
        &self,
        run: RunId,
        epoch: u32,
    ) -> crate::store::Result<Option<(CheckpointMeta, Vec<u8>)>> {
        self.inner.checkpoint(run, epoch)
    }
    fn flush(&self) -> crate::store::Result<()> {
        self.inner.flush()
    }
    fn delete_run(&self, run: RunId) -> crate::store::Result<bool> {
        self.inner.delete_run(run)
    }
    fn delete_experiment(&self, id: ExperimentId) -> crate::store::Result<bool> {
        self.inner.delete_experiment(id)
    }
}

struct Nothing;
impl Executor for Nothing {
    fn launch(&self, _run: &RunRecord) {}
    fn cancel(&self, _run: &RunRecord) {}
}

fn daemon() -> (Arc<Daemon>, Arc<Gated>) {
    let store = Arc::new(Gated {
        // No commit is held back unless a test says so.
        entered: AtomicBool::new(true),
        ..Gated::default()
    });
    let settings = DaemonSettings {
        // No slot: every run stays queued, so the quota counts them all.
        inventory: Inventory::from_spec(&[]).expect("inventory"),
        ..DaemonSettings::default()
    };
    let d = Daemon::new(
        store.clone(),
        settings,
        Arc::new(SystemClock),
        Arc::new(Nothing),
    );
    (Arc::new(d), store)
}

fn spec(name: &str, seed: usize) -> String {
    format!(
        "name = \"{name}\"\nmethod = \"ce\"\n[data]\nformat = \"digits\"\n[model]\n\
         backbone = \"mlp\"\n[train]\nepochs = 1\nseed = {seed}\n"
    )
}

/// Submits `first` alone, then `rest` together while `first`'s commit is held back, so that
/// `rest` is applied as one group, in its order; the outcomes of `rest`, in order.
fn grouped(
    d: &Arc<Daemon>,
    store: &Gated,
    first: String,
    rest: Vec<(String, &'static str)>,
) -> Vec<Result<Submitted>> {
    store.entered.store(false, Ordering::SeqCst);
    let lead = {
        let d = d.clone();
        std::thread::spawn(move || d.submit("first", &first, "ada", None))
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "{what} never happened"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    wait_for("the first commit", &|| store.entered.load(Ordering::SeqCst));
    // One at a time, so that the group holds them in this order.
    let mut handles = Vec::new();
    for (text, user) in rest {
        let d2 = d.clone();
        handles.push(std::thread::spawn(move || {
            d2.submit("rest", &text, user, None)
        }));
        let n = handles.len();
        wait_for("the submission queued", &|| d.submissions.queued() == n);
    }
    store.open.store(true, Ordering::SeqCst);
    lead.join().expect("lead").expect("the first submission");
    handles
        .into_iter()
        .map(|h| h.join().expect("a submitting thread"))
        .collect()
}

#[test]
fn a_group_reuses_its_own_runs() {
    let (d, store) = daemon();
    let same: Vec<_> = (0..8).map(|i| (spec(&format!("s{i}"), 7), "ada")).collect();
    let outs = grouped(&d, &store, spec("first", 1), same);
    assert_eq!(
        store.commits.load(Ordering::SeqCst),
        2,
        "the eight submissions behind the first were stored in one commit"
    );
    let outs: Vec<Submitted> = outs.into_iter().map(|o| o.expect("submit")).collect();
    let created: Vec<_> = outs.iter().flat_map(|o| o.runs.clone()).collect();
    assert_eq!(
        created.len(),
        1,
        "one run trained for eight identical points"
    );
    let (id, name) = created[0].clone();
    for o in outs.iter().filter(|o| o.runs.is_empty()) {
        assert_eq!(o.reused, [(id, name.clone())]);
        let stored = store
            .get_experiment(o.experiment)
            .expect("get")
            .expect("stored");
        assert_eq!(stored.runs, [id]);
    }
    // The earlier group's run is stored once too; nothing else.
    assert_eq!(
        store.list_runs(&RunFilter::default()).expect("runs").len(),
        2
    );
}

#[test]
fn a_group_counts_its_own_runs_against_the_queued_quota() {
    let (d, store) = daemon();
    d.set_max_queued_runs(Some(4));
    // ada has 1 queued; 6 more of hers arrive at once, with 2 of bob's.
    let mut rest: Vec<_> = (0..6)
        .map(|i| (spec(&format!("a{i}"), 10 + i), "ada"))
        .collect();
    rest.extend((0..2).map(|i| (spec(&format!("b{i}"), 20 + i), "bob")));
    let outs = grouped(&d, &store, spec("first", 1), rest);
    let ok = |user: &str| {
        store
            .list_runs(&RunFilter {
                user: Some(user.into()),
                state: Some(RunState::Queued),
                ..RunFilter::default()
            })
            .expect("runs")
            .len()
    };
    assert_eq!(ok("ada"), 4, "three of the six fit under her limit");
    assert_eq!(ok("bob"), 2);
    let refused: Vec<_> = outs.iter().filter_map(|o| o.as_ref().err()).collect();
    assert_eq!(refused.len(), 3);
    for e in refused {
        assert!(
            matches!(e, CoreError::QuotaExceeded { user, reason }
                if user == "ada" && reason.contains("4 queued + 1 new")),
            "{e}"
        );
    }
}

#[test]
fn a_failed_group_stores_each_submission_on_its_own() {
    let (d, store) = daemon();
    let rest = vec![
        (spec("ok-1", 31), "ada"),
        (spec("poison", 32), "ada"),
        (spec("ok-2", 33), "bob"),
        // Reuses poison's run: it cannot be stored without it.
        (spec("shares-poison", 32), "bob"),
    ];
    let outs = grouped(&d, &store, spec("first", 1), rest);
    assert!(outs[0].is_ok(), "{:?}", outs[0]);
    assert!(outs[1].is_err());
    assert!(outs[2].is_ok(), "{:?}", outs[2]);
    let shared = outs[3]
        .as_ref()
        .expect_err("its reused run was never stored");
    assert!(
        shared.to_string().contains("could not be stored"),
        "{shared}"
    );
    let names: Vec<String> = store
        .list_experiments(None, None)
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["first", "ok-1", "ok-2"]);
    assert_eq!(
        store.list_runs(&RunFilter::default()).expect("runs").len(),
        3
    );
    // The refused run left the reuse index: submitting it again creates it.
    let again = d
        .submit("again", &spec("again", 32), "ada", None)
        .expect("again");
    assert_eq!(again.runs.len(), 1);
}

/// A submission whose flush failed (a full disk: the sled store reopens and drops what was not
/// flushed) leaves nothing behind in the reuse index: the same spec submitted again trains its
/// run, rather than "reusing" a run the store no longer holds.
#[test]
fn a_submission_lost_to_a_full_disk_is_not_reused() {
    let (d, store) = daemon();
    store.full.store(true, Ordering::SeqCst);
    let err = d
        .submit("lost", &spec("lost", 5), "ada", None)
        .expect_err("not durable");
    assert!(
        matches!(err, CoreError::Store(StoreError::DiskFull { .. })),
        "{err}"
    );
    // What the reopened store holds: nothing of the lost submission.
    for run in store.inner.list_runs(&RunFilter::default()).expect("runs") {
        store.inner.delete_run(run.id).expect("drop");
    }
    for e in store.inner.list_experiments(None, None).expect("list") {
        store.inner.delete_experiment(e.id).expect("drop");
    }
    store.full.store(false, Ordering::SeqCst);
    let again = d
        .submit("again", &spec("again", 5), "ada", None)
        .expect("the same run, submitted again");
    assert_eq!(again.runs.len(), 1, "trained anew: {again:?}");
    assert!(again.reused.is_empty());
}
