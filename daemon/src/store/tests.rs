//! One test suite run against both stores (so they keep identical semantics), plus the sled
//! store's own tests: everything survives a reopen, corrupt records are errors naming the key.

use super::*;
use crate::model::{ResourceRequest, RunState};

fn experiment(id: u64, runs: &[u64]) -> ExperimentRecord {
    ExperimentRecord {
        id: ExperimentId(id),
        name: format!("exp-{id}"),
        user: "ana".into(),
        spec_text: "[train]\nepochs = 2\n".into(),
        submitted_at: 1_000 + id,
        runs: runs.iter().map(|&r| RunId(r)).collect(),
        points: Vec::new(),
    }
}

fn run(id: u64, experiment: u64, user: &str, state: RunState) -> RunRecord {
    RunRecord {
        id: RunId(id),
        experiment: ExperimentId(experiment),
        name: format!("exp-{experiment}/seed={id}"),
        user: user.into(),
        config_json: "{}".into(),
        config_hash: "00".into(),
        state,
        priority: 0,
        submitted_at: 2_000 + id,
        started_at: None,
        finished_at: None,
        attempt: 0,
        max_retries: 1,
        failures: 0,
        request: ResourceRequest::default(),
        grants: Vec::new(),
        pending_reason: None,
        error: None,
        depends_on: None,
        summary_json: None,
    }
}

fn state_event(at: Millis, from: Option<RunState>, to: RunState) -> Event {
    Event {
        at,
        kind: EventKind::State {
            from,
            to,
            reason: None,
        },
    }
}

fn log_event(at: Millis, line: &str) -> Event {
    Event {
        at,
        kind: EventKind::Log {
            stream: LogStream::Stdout,
            line: line.into(),
        },
    }
}

fn ids(runs: &[RunRecord]) -> Vec<u64> {
    runs.iter().map(|r| r.id.0).collect()
}

/// Deterministic pseudo-random bytes (xorshift64), so a chunking bug cannot hide behind zeros.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn ids_are_monotonic(s: &dyn Store) {
    let runs: Vec<u64> = (0..5)
        .map(|_| s.next_run_id().map(|r| r.0))
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(runs, [1, 2, 3, 4, 5]);
    assert_eq!(s.next_experiment_id().unwrap(), ExperimentId(1));
    assert_eq!(s.next_experiment_id().unwrap(), ExperimentId(2));
    assert_eq!(
        s.next_run_id().unwrap(),
        RunId(6),
        "the counters are independent"
    );
}

fn experiments_put_get_list(s: &dyn Store) {
    for id in 1..=5 {
        s.put_experiment(&experiment(id, &[id * 10])).unwrap();
    }
    assert_eq!(
        s.get_experiment(ExperimentId(3)).unwrap(),
        Some(experiment(3, &[30]))
    );
    assert_eq!(s.get_experiment(ExperimentId(9)).unwrap(), None);
    let mut replaced = experiment(3, &[30, 31]);
    replaced.name = "renamed".into();
    s.put_experiment(&replaced).unwrap();
    assert_eq!(s.get_experiment(ExperimentId(3)).unwrap(), Some(replaced));
    let page = |after, limit| -> Vec<u64> {
        s.list_experiments(after, limit)
            .unwrap()
            .iter()
            .map(|e| e.id.0)
            .collect()
    };
    assert_eq!(page(None, None), [1, 2, 3, 4, 5]);
    assert_eq!(page(Some(ExperimentId(2)), Some(2)), [3, 4]);
    assert_eq!(page(Some(ExperimentId(u64::MAX)), None), Vec::<u64>::new());
}

/// Ten runs over two experiments, two users and three states.
fn seed_runs(s: &dyn Store) -> Vec<RunRecord> {
    let states = [RunState::Queued, RunState::Running, RunState::Succeeded];
    let runs: Vec<RunRecord> = (1..=10)
        .map(|i| {
            run(
                i,
                1 + i % 2,
                if i <= 4 { "ana" } else { "bo" },
                states[(i % 3) as usize],
            )
        })
        .collect();
    // Out of id order: listing must still come back ordered by id.
    for r in runs.iter().rev() {
        s.put_run(r).unwrap();
    }
    runs
}

fn runs_put_get_list_filters(s: &dyn Store) {
    let runs = seed_runs(s);
    assert_eq!(s.get_run(RunId(7)).unwrap().as_ref(), Some(&runs[6]));
    assert_eq!(s.get_run(RunId(11)).unwrap(), None);
    let list = |f: RunFilter| ids(&s.list_runs(&f).unwrap());
    let expect = |pred: &dyn Fn(&RunRecord) -> bool| {
        ids(&runs.iter().filter(|r| pred(r)).cloned().collect::<Vec<_>>())
    };
    assert_eq!(list(RunFilter::default()), (1..=10).collect::<Vec<_>>());
    let by_exp = RunFilter {
        experiment: Some(ExperimentId(2)),
        ..Default::default()
    };
    assert_eq!(list(by_exp.clone()), [1, 3, 5, 7, 9]);
    let by_state = RunFilter {
        state: Some(RunState::Running),
        ..Default::default()
    };
    assert_eq!(list(by_state), expect(&|r| r.state == RunState::Running));
    assert_eq!(
        list(RunFilter {
            user: Some("ana".into()),
            ..Default::default()
        }),
        [1, 2, 3, 4]
    );
    assert_eq!(
        list(RunFilter {
            user: Some("an".into()),
            ..Default::default()
        }),
        Vec::<u64>::new()
    );
    let all_three = RunFilter {
        experiment: Some(ExperimentId(1)),
        state: Some(RunState::Queued),
        user: Some("bo".into()),
        ..Default::default()
    };
    assert_eq!(
        list(all_three),
        expect(&|r| r.experiment.0 == 1 && r.state == RunState::Queued && r.user == "bo")
    );
    // Pagination: pages of 2 after the last id seen give back the whole filtered list.
    for filter in [RunFilter::default(), by_exp] {
        let (mut seen, mut after) = (Vec::new(), None);
        loop {
            let page = s
                .list_runs(&RunFilter {
                    limit: Some(2),
                    after,
                    ..filter.clone()
                })
                .unwrap();
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            seen.extend(ids(&page));
        }
        assert_eq!(seen, list(filter));
    }
    assert_eq!(
        list(RunFilter {
            limit: Some(0),
            ..Default::default()
        }),
        Vec::<u64>::new()
    );
    assert_eq!(
        list(RunFilter {
            after: Some(RunId(u64::MAX)),
            ..Default::default()
        }),
        Vec::<u64>::new()
    );
}

fn indexes_follow_state_changes(s: &dyn Store) {
    seed_runs(s);
    let under = |state| {
        ids(&s
            .list_runs(&RunFilter {
                state: Some(state),
                ..Default::default()
            })
            .unwrap())
    };
    let mut r = run(11, 1, "ana", RunState::Queued);
    for state in [RunState::Queued, RunState::Running, RunState::Succeeded] {
        r.state = state;
        s.put_run(&r).unwrap();
        for other in [
            RunState::Queued,
            RunState::Running,
            RunState::Succeeded,
            RunState::Failed,
        ] {
            assert_eq!(
                under(other).contains(&11),
                other == state,
                "run 11 in {state:?}, listed under {other:?}"
            );
        }
    }
    // Moving a run to another experiment and user moves its index entries too.
    r.experiment = ExperimentId(3);
    r.user = "cy".into();
    s.put_run(&r).unwrap();
    let list = |f: RunFilter| ids(&s.list_runs(&f).unwrap());
    assert_eq!(
        list(RunFilter {
            experiment: Some(ExperimentId(3)),
            ..Default::default()
        }),
        [11]
    );
    assert!(
        !list(RunFilter {
            experiment: Some(ExperimentId(1)),
            ..Default::default()
        })
        .contains(&11)
    );
    assert!(
        !list(RunFilter {
            user: Some("ana".into()),
            ..Default::default()
        })
        .contains(&11)
    );
    assert_eq!(
        list(RunFilter {
            user: Some("cy".into()),
            ..Default::default()
        }),
        [11]
    );
    assert_eq!(
        s.list_runs(&RunFilter::default()).unwrap().len(),
        11,
        "a replaced run is listed once"
    );
}

fn grid(exp: u64, first_run: u64, n: u64) -> Vec<WriteOp> {
    let ids: Vec<u64> = (first_run..first_run + n).collect();
    let mut ops = vec![WriteOp::PutExperiment(experiment(exp, &ids))];
    for &id in &ids {
        ops.push(WriteOp::PutRun(run(id, exp, "ana", RunState::Queued)));
        ops.push(WriteOp::AppendEvent(
            RunId(id),
            state_event(5, None, RunState::Queued),
        ));
    }
    ops
}

fn commit_is_all_or_nothing(s: &dyn Store) {
    let seqs = s.commit(&grid(1, 1, 100)).unwrap();
    assert_eq!(seqs, vec![0; 100], "each run's first event is seq 0");
    let exp1 = RunFilter {
        experiment: Some(ExperimentId(1)),
        ..Default::default()
    };
    assert_eq!(s.list_runs(&exp1).unwrap().len(), 100);
    assert_eq!(s.events(RunId(100), 0).unwrap().len(), 1);

    // The same kind of grid whose last op names a run that exists nowhere: nothing is stored.
    let mut bad = grid(2, 101, 100);
    bad.push(WriteOp::AppendEvent(
        RunId(1),
        log_event(6, "stored only if the batch is"),
    ));
    bad.push(WriteOp::AppendEvent(
        RunId(999),
        log_event(6, "no such run"),
    ));
    let err = s.commit(&bad).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("r-999"), "{err}");
    assert_eq!(s.get_experiment(ExperimentId(2)).unwrap(), None);
    assert_eq!(s.get_run(RunId(101)).unwrap(), None);
    let exp2 = RunFilter {
        experiment: Some(ExperimentId(2)),
        ..Default::default()
    };
    assert!(s.list_runs(&exp2).unwrap().is_empty());
    let queued = RunFilter {
        state: Some(RunState::Queued),
        ..Default::default()
    };
    assert_eq!(
        s.list_runs(&queued).unwrap().len(),
        100,
        "no index entry of the failed batch"
    );
    assert_eq!(
        s.events(RunId(1), 0).unwrap().len(),
        1,
        "no event of the failed batch"
    );
    assert!(s.events(RunId(150), 0).unwrap().is_empty());

    // Several events for one run in one batch are numbered in order, after the stored ones.
    let more = [
        WriteOp::AppendEvent(
            RunId(1),
            state_event(7, Some(RunState::Queued), RunState::Running),
        ),
        WriteOp::AppendEvent(RunId(2), log_event(7, "x")),
        WriteOp::AppendEvent(RunId(1), log_event(8, "started")),
    ];
    assert_eq!(
        s.commit(&more).unwrap(),
        [1, 1, 2],
        "run 2 had its seq 0 from the grid"
    );
    assert_eq!(s.commit(&[]).unwrap(), Vec::<u64>::new());
}

fn events_order_and_bound(s: &dyn Store) {
    seed_runs(s);
    let err = s.append_event(RunId(42), &log_event(1, "x")).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let r = RunId(3);
    assert_eq!(
        s.append_event(r, &state_event(1, None, RunState::Queued))
            .unwrap(),
        0
    );
    assert_eq!(
        s.append_event(RunId(4), &log_event(1, "other run"))
            .unwrap(),
        0
    );
    assert_eq!(
        s.append_event(
            r,
            &state_event(2, Some(RunState::Queued), RunState::Running)
        )
        .unwrap(),
        1
    );
    // 4095 ASCII bytes then a 3-byte char straddling the bound: cut before the char.
    let long = format!("{}€tail", "a".repeat(4095));
    assert_eq!(s.append_event(r, &log_event(3, &long)).unwrap(), 2);
    let exit = Event {
        at: 4,
        kind: EventKind::Exit {
            attempt: 1,
            code: Some(0),
            signal: None,
        },
    };
    assert_eq!(s.append_event(r, &exit).unwrap(), 3);
    let all = s.events(r, 0).unwrap();
    assert_eq!(
        all.iter().map(|(q, _)| *q).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(
        all[1].1,
        state_event(2, Some(RunState::Queued), RunState::Running)
    );
    assert_eq!(all[3].1, exit);
    let EventKind::Log { line, .. } = &all[2].1.kind else {
        panic!("not a log event: {:?}", all[2])
    };
    assert_eq!(line, &"a".repeat(4095));
    let short = log_event(3, &format!("{}€", "a".repeat(4093)));
    assert_eq!(
        short.bounded(),
        short,
        "a line of exactly 4096 bytes is kept whole"
    );
    let tail = s.events(r, 2).unwrap();
    assert_eq!(tail.iter().map(|(q, _)| *q).collect::<Vec<_>>(), [2, 3]);
    assert!(s.events(r, 4).unwrap().is_empty());
    assert!(s.events(RunId(5), 0).unwrap().is_empty());
}

fn metrics_are_idempotent(s: &dyn Store) {
    seed_runs(s);
    let r = RunId(2);
    assert!(s.append_metric(r, 2, 1, br#"{"loss":0.5}"#).unwrap());
    assert!(s.append_metric(r, 0, 1, br#"{"loss":0.9}"#).unwrap());
    assert!(s.append_metric(r, 1, 1, br#"{"loss":0.7}"#).unwrap());
    // A restarted worker resends epoch 1 (even with other numbers): the first stays.
    assert!(!s.append_metric(r, 1, 1, br#"{"loss":0.6}"#).unwrap());
    assert!(s.append_metric(r, 256, 2, br#"{"loss":0.1}"#).unwrap());
    assert!(
        s.append_metric(RunId(3), 1, 1, b"{}").unwrap(),
        "another run's epoch 1 is its own"
    );
    let got = s.metrics(r).unwrap();
    let epochs: Vec<(u32, u8, &[u8])> = got
        .iter()
        .map(|m| (m.epoch, m.stage, m.json.as_slice()))
        .collect();
    assert_eq!(
        epochs,
        [
            (0, 1, &br#"{"loss":0.9}"#[..]),
            (1, 1, br#"{"loss":0.7}"#),
            (2, 1, br#"{"loss":0.5}"#),
            (256, 2, br#"{"loss":0.1}"#)
        ]
    );
    assert!(matches!(
        s.append_metric(r, 3, 1, b"{not json").unwrap_err(),
        StoreError::Invalid { .. }
    ));
    assert!(matches!(
        s.append_metric(RunId(77), 0, 1, b"{}").unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert_eq!(s.metrics(r).unwrap().len(), 4);
    assert!(s.metrics(RunId(5)).unwrap().is_empty());
}

fn checkpoints_chunk_and_retain(s: &dyn Store) {
    seed_runs(s);
    let r = RunId(1);
    assert_eq!(s.latest_checkpoint(r).unwrap(), None);
    let big = payload(3 * CHUNK_SIZE + CHUNK_SIZE / 2, 7);
    let meta = s.put_checkpoint(r, 1, 1, &big, true).unwrap();
    assert_eq!(
        (meta.size, meta.chunks, meta.attempt, meta.is_best),
        (big.len() as u64, 4, 1, true)
    );
    let (got_meta, got) = s.checkpoint(r, 1).unwrap().unwrap();
    assert_eq!(got_meta, meta);
    assert!(got == big, "the 3.5 MiB payload comes back byte for byte");
    assert_eq!(
        s.checkpoint_chunk(r, 1, 3).unwrap().map(|c| c.len()),
        Some(CHUNK_SIZE / 2)
    );
    assert!(s.checkpoint_chunk(r, 1, 2).unwrap().unwrap() == big[2 * CHUNK_SIZE..3 * CHUNK_SIZE]);
    assert_eq!(s.checkpoint_chunk(r, 1, 4).unwrap(), None);

    // Keep the last 2 by epoch plus the best (epoch 1).
    let small = |seed| payload(CHUNK_SIZE + 10, seed);
    for epoch in 2..=4 {
        s.put_checkpoint(r, 1, epoch, &small(epoch as u64), false)
            .unwrap();
    }
    let epochs = |s: &dyn Store| {
        s.list_checkpoints(r)
            .unwrap()
            .iter()
            .map(|m| m.epoch)
            .collect::<Vec<_>>()
    };
    assert_eq!(epochs(s), [1, 3, 4]);
    assert_eq!(s.checkpoint(r, 2).unwrap(), None);
    assert_eq!(
        s.checkpoint_chunk(r, 2, 0).unwrap(),
        None,
        "an evicted checkpoint's chunks are gone"
    );
    let (latest, bytes) = s.latest_checkpoint(r).unwrap().unwrap();
    assert_eq!((latest.epoch, bytes), (4, small(4)));
    assert_eq!(s.best_checkpoint(r).unwrap().map(|(m, _)| m.epoch), Some(1));

    // A new best replaces the old one, which then falls out of the window.
    s.put_checkpoint(r, 2, 5, &small(5), true).unwrap();
    assert_eq!(epochs(s), [4, 5]);
    assert_eq!(
        s.best_checkpoint(r)
            .unwrap()
            .map(|(m, _)| (m.epoch, m.attempt)),
        Some((5, 2))
    );
    assert_eq!(s.checkpoint_chunk(r, 1, 3).unwrap(), None);

    // Rewriting an epoch (a retried attempt) replaces its chunks; an older epoch written
    // after newer ones is kept (it is what the retry resumes from).
    s.put_checkpoint(r, 3, 5, b"tiny", true).unwrap();
    assert_eq!(
        s.checkpoint(r, 5).unwrap().map(|(m, b)| (m.chunks, b)),
        Some((1, b"tiny".to_vec()))
    );
    assert_eq!(s.checkpoint_chunk(r, 5, 1).unwrap(), None);
    s.put_checkpoint(r, 3, 3, b"", false).unwrap();
    assert_eq!(epochs(s), [3, 4, 5]);
    assert_eq!(
        s.checkpoint(r, 3)
            .unwrap()
            .map(|(m, b)| (m.chunks, b.len())),
        Some((0, 0))
    );
    assert_eq!(
        s.latest_checkpoint(r).unwrap().map(|(m, _)| m.epoch),
        Some(5)
    );
    s.put_checkpoint(r, 3, 6, b"six", false).unwrap();
    assert_eq!(
        epochs(s),
        [5, 6],
        "back to the last 2 plus the best (5, also in the window)"
    );

    assert!(matches!(
        s.put_checkpoint(RunId(99), 1, 1, b"x", false).unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert!(s.list_checkpoints(RunId(2)).unwrap().is_empty());
}

macro_rules! shared_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn ids_are_monotonic() {
                let (s, _dir) = $make;
                super::ids_are_monotonic(&s);
            }
            #[test]
            fn experiments_put_get_list() {
                let (s, _dir) = $make;
                super::experiments_put_get_list(&s);
            }
            #[test]
            fn runs_put_get_list_filters() {
                let (s, _dir) = $make;
                super::runs_put_get_list_filters(&s);
            }
            #[test]
            fn indexes_follow_state_changes() {
                let (s, _dir) = $make;
                super::indexes_follow_state_changes(&s);
            }
            #[test]
            fn commit_is_all_or_nothing() {
                let (s, _dir) = $make;
                super::commit_is_all_or_nothing(&s);
            }
            #[test]
            fn events_order_and_bound() {
                let (s, _dir) = $make;
                super::events_order_and_bound(&s);
            }
            #[test]
            fn metrics_are_idempotent() {
                let (s, _dir) = $make;
                super::metrics_are_idempotent(&s);
            }
            #[test]
            fn checkpoints_chunk_and_retain() {
                let (s, _dir) = $make;
                super::checkpoints_chunk_and_retain(&s);
            }
        }
    };
}

fn new_sled() -> (SledStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path().join("db"), StoreConfig::default()).unwrap();
    (store, dir)
}

shared_suite!(memory, (MemoryStore::default(), ()));
shared_suite!(sled, new_sled());

mod sled_only;
