//! The shared suite's cases on per-epoch metrics: stored once per (run, epoch), returned in
//! epoch order, JSON checked.

use super::*;

pub(super) fn metrics_are_idempotent(s: &dyn Store) {
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
