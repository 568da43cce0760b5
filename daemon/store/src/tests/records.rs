//! The shared suite's cases on records: id counters, experiments, and runs with their
//! experiment, state and user indexes (listing, filtering, paging, moving between indexes).

use super::*;

pub(super) fn ids_are_monotonic(s: &dyn Store) {
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

pub(super) fn experiments_put_get_list(s: &dyn Store) {
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

pub(super) fn runs_put_get_list_filters(s: &dyn Store) {
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

pub(super) fn indexes_follow_state_changes(s: &dyn Store) {
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
