//! The shared suite's cases on per-epoch metrics: stored once per (run, epoch), returned in
//! epoch order, checked to be stored epochs; with their `Epoch` event in one write, numbered among the run's
//! other events, even under concurrent writers.

use super::*;

pub(super) fn metrics_are_idempotent(s: &dyn Store) {
    seed_runs(s);
    let r = RunId(2);
    assert!(s.append_metric(r, 2, 1, &doc(2, 0.5)).unwrap());
    assert!(s.append_metric(r, 0, 1, &doc(0, 0.9)).unwrap());
    assert!(s.append_metric(r, 1, 1, &doc(1, 0.7)).unwrap());
    // A restarted worker resends epoch 1 (even with other numbers): the first stays.
    assert!(!s.append_metric(r, 1, 1, &doc(1, 0.6)).unwrap());
    assert!(s.append_metric(r, 256, 2, &doc(256, 0.1)).unwrap());
    assert!(
        s.append_metric(RunId(3), 1, 1, &doc(1, 0.0)).unwrap(),
        "another run's epoch 1 is its own"
    );
    let got = s.metrics(r).unwrap();
    let epochs: Vec<(u32, u8, &[u8])> = got
        .iter()
        .map(|m| (m.epoch, m.stage, m.doc.as_slice()))
        .collect();
    let want = [doc(0, 0.9), doc(1, 0.7), doc(2, 0.5), doc(256, 0.1)];
    assert_eq!(
        epochs,
        [
            (0, 1, &want[0][..]),
            (1, 1, &want[1][..]),
            (2, 1, &want[2][..]),
            (256, 2, &want[3][..])
        ]
    );
    // One epoch by key: the same point as in the scan; an absent epoch is None.
    assert_eq!(s.metric(r, 256).unwrap().as_ref(), got.last());
    assert_eq!(s.metric(r, 3).unwrap(), None);
    assert_eq!(s.last_epoch(r).unwrap(), 256);
    assert_eq!(s.last_epoch(RunId(1)).unwrap(), 0);
    assert!(matches!(
        s.append_metric(r, 3, 1, b"{not json").unwrap_err(),
        StoreError::Invalid { .. }
    ));
    // JSON that is not an epoch record is refused too.
    assert!(matches!(
        s.append_metric(r, 3, 1, br#"{"loss":0.5}"#).unwrap_err(),
        StoreError::Invalid { .. }
    ));
    assert!(matches!(
        s.append_metric(RunId(77), 0, 1, &doc(0, 0.0)).unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert_eq!(s.metrics(r).unwrap().len(), 4);
    assert!(s.metrics(RunId(5)).unwrap().is_empty());
}

fn epoch_event(epoch: u32) -> Event {
    Event {
        at: 100 + Millis::from(epoch),
        kind: EventKind::Epoch {
            epoch,
            stage: 1,
            attempt: 1,
        },
    }
}

pub(super) fn metric_with_event_is_one_write(s: &dyn Store) {
    seed_runs(s);
    let r = RunId(2);
    assert_eq!(
        s.append_event(r, &state_event(1, None, RunState::Queued))
            .unwrap(),
        0
    );
    let report = |epoch, json: &[u8]| {
        s.append_metric_with_event(r, epoch, 1, json, &epoch_event(epoch))
            .unwrap()
    };
    assert_eq!(report(1, &doc(1, 0.7)), Some(1));
    assert_eq!(s.append_event(r, &log_event(2, "between")).unwrap(), 2);
    assert_eq!(report(2, &doc(2, 0.5)), Some(3));
    // A resent epoch (even with other numbers) writes neither its metric nor its event.
    assert_eq!(report(1, &doc(1, 0.6)), None);
    // Nor does one that `append_metric` stored.
    assert!(s.append_metric(r, 3, 1, &doc(3, 0.0)).unwrap());
    assert_eq!(report(3, &doc(3, 0.4)), None);
    // Bad input writes nothing either.
    let err = s
        .append_metric_with_event(r, 4, 1, b"{not json", &epoch_event(4))
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    let err = s
        .append_metric_with_event(RunId(77), 1, 1, &doc(1, 0.0), &epoch_event(1))
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("r-77"), "{err}");

    let events = s.events(r, 0).unwrap();
    assert_eq!(
        events.iter().map(|(q, _)| *q).collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "contiguous with the run's other events"
    );
    assert_eq!(events[1].1, epoch_event(1));
    assert_eq!(events[3].1, epoch_event(2));
    let metrics: Vec<(u32, Vec<u8>)> = s
        .metrics(r)
        .unwrap()
        .into_iter()
        .map(|m| (m.epoch, m.doc))
        .collect();
    assert_eq!(
        metrics,
        [(1, doc(1, 0.7)), (2, doc(2, 0.5)), (3, doc(3, 0.0))]
    );
    assert!(s.metrics(RunId(77)).unwrap().is_empty());
    assert_eq!(
        s.append_event(r, &log_event(5, "after")).unwrap(),
        4,
        "numbering goes on"
    );
    // Another run numbers its own events; the event is stored bounded, as `append_event` does.
    let long = log_event(6, &"b".repeat(MAX_LOG_LINE + 10));
    assert_eq!(
        s.append_metric_with_event(RunId(3), 1, 2, &doc(1, 0.0), &long)
            .unwrap(),
        Some(0)
    );
    assert_eq!(s.events(RunId(3), 0).unwrap(), [(0, long.bounded())]);
}

/// Writers racing on the same epochs of one run, beside plain event appends: each epoch is
/// stored once, with one event, and the run's event numbers stay contiguous.
pub(super) fn concurrent_reports_store_each_epoch_once(s: &dyn Store) {
    seed_runs(s);
    let r = RunId(1);
    let (reported, logged): (Vec<Vec<u64>>, Vec<u64>) = std::thread::scope(|scope| {
        let reporters: Vec<_> = (0..3)
            .map(|t| {
                scope.spawn(move || {
                    (1..=10)
                        .filter_map(|epoch| {
                            s.append_metric_with_event(
                                r,
                                epoch,
                                1,
                                &doc(epoch, t as f32),
                                &epoch_event(epoch),
                            )
                            .unwrap()
                        })
                        .collect()
                })
            })
            .collect();
        let logger = scope.spawn(move || {
            (0..10)
                .map(|i| s.append_event(r, &log_event(i, "x")).unwrap())
                .collect()
        });
        let reported = reporters.into_iter().map(|h| h.join().unwrap()).collect();
        (reported, logger.join().unwrap())
    });
    let mut seqs: Vec<u64> = reported.iter().flatten().chain(&logged).copied().collect();
    assert_eq!(
        reported.iter().map(Vec::len).sum::<usize>(),
        10,
        "each epoch stored once: {reported:?}"
    );
    seqs.sort_unstable();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>());
    let events = s.events(r, 0).unwrap();
    let epochs: Vec<u32> = events
        .iter()
        .filter_map(|(_, e)| match e.kind {
            EventKind::Epoch { epoch, .. } => Some(epoch),
            _ => None,
        })
        .collect();
    assert_eq!(epochs.len(), 10);
    assert_eq!(
        s.metrics(r)
            .unwrap()
            .iter()
            .map(|m| m.epoch)
            .collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
}
