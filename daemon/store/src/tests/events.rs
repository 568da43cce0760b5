//! The shared suite's cases on the event log: atomic commits and how events are numbered,
//! read back from a sequence number and bounded in size.

use super::*;

pub(super) fn commit_is_all_or_nothing(s: &dyn Store) {
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

pub(super) fn events_order_and_bound(s: &dyn Store) {
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
