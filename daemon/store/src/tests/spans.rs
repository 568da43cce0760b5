//! Reports of many epochs at once (which the sled store keeps as spans, several epochs or
//! events under one key) read back exactly as if each epoch had been reported alone: on both
//! stores, whatever the order, the duplicates or the single epochs around them; and on sled,
//! what is written before and after spans existed reads side by side.

use super::*;

/// A stored epoch with a `classes`-class evaluation (about 6 bytes a class), told apart by its
/// loss: 300 classes make 4 KiB spans hold two epochs or so.
fn wide_doc(epoch: u32, loss: f32, classes: usize) -> Vec<u8> {
    let record = cauda_plugins::train::EpochRecord {
        stage: 1 + u8::from(epoch > 40),
        epoch: epoch as usize,
        train_loss: loss,
        lr: 0.1,
        images_per_sec: 1.0,
        eval: Some(cauda_plugins::train::EvalRecord {
            test_top1: 0.5,
            many: Some(0.6),
            medium: None,
            few: Some(0.1),
            per_class: (0..classes).map(|c| Some(c as f32 / 1000.0)).collect(),
            ..Default::default()
        }),
        extra: Default::default(),
    };
    cauda_model::StoredEpoch::encode_parts(1, &record).unwrap()
}

fn write(epoch: u32, loss: f32) -> EpochWrite {
    let doc = wide_doc(epoch, loss, 300);
    EpochWrite {
        epoch,
        stage: 1 + u8::from(epoch > 40),
        doc: EpochDoc::parse("test", doc).unwrap(),
        event: Event {
            at: 100 + Millis::from(epoch),
            kind: EventKind::Epoch {
                epoch,
                stage: 1,
                attempt: 1,
            },
        },
    }
}

fn report(s: &dyn Store, run: RunId, epochs: &[u32], loss: f32) -> Vec<Option<u64>> {
    let writes: Vec<EpochWrite> = epochs.iter().map(|&e| write(e, loss)).collect();
    s.append_metrics_with_events(run, &writes).unwrap()
}

pub(super) fn batched_reports_read_like_single_ones(s: &dyn Store) {
    seed_runs(s);
    let r = RunId(2);
    assert_eq!(s.append_event(r, &log_event(1, "start")).unwrap(), 0);
    let first: Vec<u32> = (1..=40).collect();
    assert_eq!(
        report(s, r, &first, 0.5),
        (1..=40).map(Some).collect::<Vec<_>>()
    );
    assert_eq!(s.append_event(r, &log_event(2, "between")).unwrap(), 41);
    // Backwards, overlapping what is stored: the new epochs take seqs in request order.
    let back: Vec<u32> = (35..=45).rev().collect();
    let want: Vec<Option<u64>> = (0..11).map(|i| (i < 5).then_some(42 + i)).collect();
    assert_eq!(report(s, r, &back, 0.9), want);
    // An epoch twice in one request is stored once.
    assert_eq!(report(s, r, &[47, 46, 47], 0.5), [Some(47), Some(48), None]);
    // A single epoch stored alone splits a later report around it.
    assert!(s.append_metric(r, 60, 1, &wide_doc(60, 0.5, 300)).unwrap());
    assert_eq!(
        report(s, r, &[58, 59, 60, 61, 62], 0.7),
        [Some(49), Some(50), None, Some(51), Some(52)]
    );
    assert_eq!(report(s, r, &first, 0.1), vec![None; 40], "all resent");

    let stored = s.metrics(r).unwrap();
    let epochs: Vec<u32> = stored.iter().map(|m| m.epoch).collect();
    let want: Vec<u32> = (1..=47).chain(58..=62).collect();
    assert_eq!(epochs, want);
    for m in &stored {
        // The first report of an epoch is the one kept.
        let loss = match m.epoch {
            1..=40 | 46 | 47 | 60 => 0.5,
            41..=45 => 0.9,
            _ => 0.7,
        };
        assert_eq!(m.doc, wide_doc(m.epoch, loss, 300), "epoch {}", m.epoch);
        assert_eq!(m.stage, 1 + u8::from(m.epoch > 40 && m.epoch != 60));
    }
    for epoch in 0..=70 {
        let alone = s.metric(r, epoch).unwrap();
        assert_eq!(alone.as_ref(), stored.iter().find(|m| m.epoch == epoch));
    }
    assert_eq!(s.last_epoch(r).unwrap(), 62);

    let events = s.events(r, 0).unwrap();
    let seqs: Vec<u64> = events.iter().map(|(q, _)| *q).collect();
    assert_eq!(seqs, (0..=52).collect::<Vec<_>>());
    assert_eq!(
        events[43].1,
        write(44, 0.0).event,
        "seq 43 is epoch 44's event"
    );
    for from in 0..=54 {
        let tail: Vec<_> = events.iter().filter(|(q, _)| *q >= from).cloned().collect();
        assert_eq!(s.events(r, from).unwrap(), tail, "from {from}");
    }
    assert_eq!(s.append_event(r, &log_event(3, "after")).unwrap(), 53);
    // Another run is untouched, and numbers its own events.
    assert_eq!(
        report(s, RunId(3), &[1, 2, 3], 0.5),
        [Some(0), Some(1), Some(2)]
    );
    assert!(s.delete_run(r).unwrap());
    assert!(s.metrics(r).unwrap().is_empty());
    assert!(s.events(r, 0).unwrap().is_empty());
    assert_eq!(
        (s.metric(r, 5).unwrap(), s.last_epoch(r).unwrap()),
        (None, 0)
    );
    assert_eq!(s.metrics(RunId(3)).unwrap().len(), 3);
}
