//! The shared suite's case on deletion: a deleted run leaves nothing behind (record, every
//! index, events, metrics, checkpoints), its neighbours keep everything, and deleting twice or
//! deleting an unknown id is a plain `false`.

use super::*;

pub(super) fn deleting_a_run_removes_everything_under_it(s: &dyn Store) {
    s.commit(&grid(1, 1, 2)).unwrap();
    let (gone, kept) = (RunId(1), RunId(2));
    for r in [gone, kept] {
        s.append_event(r, &log_event(7, "hello")).unwrap();
        s.append_metric(r, 1, 1, &doc(1, 1.0)).unwrap();
        s.put_checkpoint(r, 1, 1, &payload(CHUNK_SIZE + 3, r.0), true)
            .unwrap();
    }
    assert!(s.delete_run(gone).unwrap());
    assert_eq!(s.get_run(gone).unwrap(), None);
    assert!(s.events(gone, 0).unwrap().is_empty());
    assert!(s.metrics(gone).unwrap().is_empty());
    assert!(s.list_checkpoints(gone).unwrap().is_empty());
    assert_eq!(s.checkpoint_chunk(gone, 1, 0).unwrap(), None);
    for filter in [
        RunFilter {
            experiment: Some(ExperimentId(1)),
            ..RunFilter::default()
        },
        RunFilter {
            state: Some(RunState::Queued),
            ..RunFilter::default()
        },
        RunFilter {
            user: Some("ana".into()),
            ..RunFilter::default()
        },
    ] {
        assert_eq!(ids(&s.list_runs(&filter).unwrap()), [2], "{filter:?}");
    }
    // The neighbour is whole; the experiment record is not the run store's to change.
    assert_eq!(s.events(kept, 0).unwrap().len(), 2);
    assert_eq!(s.metrics(kept).unwrap().len(), 1);
    assert_eq!(s.list_checkpoints(kept).unwrap().len(), 1);
    assert!(s.get_experiment(ExperimentId(1)).unwrap().is_some());
    // Twice, or unknown: false and nothing else changes.
    assert!(!s.delete_run(gone).unwrap());
    assert!(!s.delete_run(RunId(99)).unwrap());
    assert!(s.delete_experiment(ExperimentId(1)).unwrap());
    assert_eq!(s.get_experiment(ExperimentId(1)).unwrap(), None);
    assert!(!s.delete_experiment(ExperimentId(1)).unwrap());
    assert_eq!(s.get_run(kept).unwrap().map(|r| r.id), Some(kept));
}
