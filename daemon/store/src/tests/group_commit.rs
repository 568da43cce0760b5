//! Group commit in the sled store: concurrent writers share flushes and every acknowledged write
//! survives a reopen; a write that fails in a group fails alone; an applied write is readable
//! before it is durable and durable once `wait_durable` returns; ids taken without a flush are
//! made durable by the commit that uses them; the runs' briefs follow every put and are built
//! for a database stored before them. (A flush that fails, or a write lost before any flush,
//! acknowledging nobody is shown on the protocol itself in `group_flush`.)

use super::*;
use std::path::Path;
use std::sync::{Arc, Barrier};

fn reopen(path: &Path) -> SledStore {
    SledStore::open(path, StoreConfig::default()).unwrap()
}

fn epoch_event(epoch: u32) -> Event {
    Event {
        at: 7,
        kind: EventKind::Epoch {
            epoch,
            stage: 1,
            attempt: 1,
        },
    }
}

#[test]
fn concurrent_writers_share_flushes_and_all_survive_reopen() {
    const WRITERS: u64 = 32;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = Arc::new(reopen(&path));
        let before = s.flushes();
        let start = Arc::new(Barrier::new(WRITERS as usize));
        let threads: Vec<_> = (1..=WRITERS)
            .map(|id| {
                let (s, start) = (s.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    s.commit(&grid(id, id, 1)).unwrap();
                    let seq = s
                        .append_metric_with_event(
                            RunId(id),
                            1,
                            1,
                            &doc(1, id as f32),
                            &epoch_event(1),
                        )
                        .unwrap();
                    assert_eq!(seq, Some(1), "run {id}: its epoch follows its queued event");
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let flushes = s.flushes() - before;
        // Each writer was acknowledged after a flush; how many they shared depends on timing,
        // but never more than one per write.
        assert!(
            flushes <= 2 * WRITERS,
            "{flushes} flushes for {} writes",
            2 * WRITERS
        );
        // Dropped without any further flush: only what the acknowledged flushes wrote remains.
    }
    let s = reopen(&path);
    for id in 1..=WRITERS {
        assert_eq!(s.get_run(RunId(id)).unwrap().unwrap().id, RunId(id));
        assert_eq!(s.events(RunId(id), 0).unwrap().len(), 2, "run {id}");
        assert_eq!(s.metrics(RunId(id)).unwrap().len(), 1, "run {id}");
    }
}

#[test]
fn a_failing_commit_in_a_group_fails_alone() {
    let (s, _dir) = new_sled();
    let s = Arc::new(s);
    let start = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (1..=16u64)
        .map(|id| {
            let (s, start) = (s.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                if id.is_multiple_of(4) {
                    // An event for a run that does not exist: its transaction aborts.
                    s.commit(&[WriteOp::AppendEvent(RunId(1000 + id), log_event(1, "x"))])
                        .map(|_| ())
                } else {
                    s.commit(&grid(id, id, 1)).map(|_| ())
                }
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let id = i as u64 + 1;
        let outcome = t.join().unwrap();
        if id.is_multiple_of(4) {
            assert!(
                matches!(outcome, Err(StoreError::NotFound { .. })),
                "{outcome:?}"
            );
        } else {
            outcome.unwrap();
            assert!(s.get_run(RunId(id)).unwrap().is_some());
        }
    }
    assert_eq!(s.list_runs(&RunFilter::default()).unwrap().len(), 12);
}

#[test]
fn an_applied_commit_is_readable_at_once_and_durable_after_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = reopen(&path);
        let (seqs, first) = s.commit_applied(&grid(1, 1, 2)).unwrap();
        assert_eq!(seqs, [0, 0]);
        assert!(
            s.get_run(RunId(2)).unwrap().is_some(),
            "visible before the flush"
        );
        let (_, second) = s.commit_applied(&grid(2, 3, 1)).unwrap();
        assert!(first < second, "tickets follow the order of the writes");
        assert_eq!(s.newest_ticket(), second);
        let flushes = s.flushes();
        s.wait_durable(second).unwrap();
        s.wait_durable(first).unwrap();
        assert_eq!(s.flushes(), flushes + 1, "one flush covered both commits");
    }
    let s = reopen(&path);
    assert_eq!(s.list_runs(&RunFilter::default()).unwrap().len(), 3);
}

#[test]
fn ids_taken_without_a_flush_become_durable_with_their_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = reopen(&path);
        assert_eq!(s.next_experiment_id().unwrap(), ExperimentId(1));
        let ids = s.next_run_ids(3).unwrap();
        assert_eq!(ids, [RunId(1), RunId(2), RunId(3)]);
        assert_eq!(s.next_run_ids(0).unwrap(), []);
        s.commit(&grid(1, 1, 3)).unwrap();
    }
    let s = reopen(&path);
    assert_eq!(s.next_run_id().unwrap(), RunId(4), "no id is reused");
    assert_eq!(s.next_experiment_id().unwrap(), ExperimentId(2));
}

#[test]
fn briefs_follow_every_put_and_are_built_for_an_older_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let briefs =
        |s: &SledStore, filter: &RunFilter| -> Vec<RunBrief> { s.list_run_briefs(filter).unwrap() };
    let of = |runs: Vec<RunRecord>| -> Vec<RunBrief> { runs.iter().map(RunBrief::of).collect() };
    {
        let s = reopen(&path);
        seed_runs(&s);
        let mut moved = run(3, 2, "ana", RunState::Running);
        moved.facts = Some(cauda_model::RunFacts {
            epochs_total: 12,
            ..Default::default()
        });
        s.put_run(&moved).unwrap();
        s.delete_run(RunId(5)).unwrap();
        for filter in [
            RunFilter::default(),
            RunFilter {
                state: Some(RunState::Running),
                ..Default::default()
            },
            RunFilter {
                user: Some("bo".into()),
                limit: Some(2),
                ..Default::default()
            },
            RunFilter {
                experiment: Some(ExperimentId(2)),
                after: Some(RunId(1)),
                ..Default::default()
            },
        ] {
            assert_eq!(
                briefs(&s, &filter),
                of(s.list_runs(&filter).unwrap()),
                "{filter:?}"
            );
        }
        assert_eq!(
            briefs(&s, &RunFilter::default())[2]
                .facts
                .as_ref()
                .map(|f| f.epochs_total),
            Some(12)
        );
    }
    {
        // As a database written before briefs: no briefs, no marker.
        let raw = ::sled::open(&path).unwrap();
        raw.open_tree("run_briefs").unwrap().clear().unwrap();
        raw.open_tree("meta")
            .unwrap()
            .remove("run_briefs_built")
            .unwrap();
        raw.flush().unwrap();
    }
    let s = reopen(&path);
    let all = RunFilter::default();
    assert_eq!(briefs(&s, &all), of(s.list_runs(&all).unwrap()));
    assert_eq!(briefs(&s, &all).len(), 9);
}
