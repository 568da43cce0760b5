//! What only the sled store can show: everything survives a drop and reopen, stored garbage is
//! an error naming its key, a bad path is an error naming the path, and concurrent writers get
//! distinct, contiguous event numbers.

use super::*;
use std::path::Path;
use std::sync::Arc;

fn reopen(path: &Path) -> SledStore {
    SledStore::open(path, StoreConfig::default()).unwrap()
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let big = payload(3 * CHUNK_SIZE + CHUNK_SIZE / 2, 3);
    {
        let s = reopen(&path);
        assert_eq!(s.next_experiment_id().unwrap(), ExperimentId(1));
        for want in 1..=3 {
            assert_eq!(s.next_run_id().unwrap(), RunId(want));
        }
        s.commit(&grid(1, 1, 3)).unwrap();
        s.put_run(&run(2, 1, "ana", RunState::Running)).unwrap();
        s.append_event(
            RunId(2),
            &state_event(9, Some(RunState::Queued), RunState::Running),
        )
        .unwrap();
        assert!(s.append_metric(RunId(2), 0, 1, &doc(0, 0.5)).unwrap());
        s.put_checkpoint(RunId(2), 1, 0, &big, true).unwrap();
    }
    let s = reopen(&path);
    assert_eq!(
        s.next_run_id().unwrap(),
        RunId(4),
        "no id is reused after a restart"
    );
    assert_eq!(s.next_experiment_id().unwrap(), ExperimentId(2));
    assert_eq!(
        s.get_experiment(ExperimentId(1)).unwrap(),
        Some(experiment(1, &[1, 2, 3]))
    );
    assert_eq!(
        s.get_run(RunId(2)).unwrap(),
        Some(run(2, 1, "ana", RunState::Running))
    );
    let under = |state| {
        ids(&s
            .list_runs(&RunFilter {
                state: Some(state),
                ..Default::default()
            })
            .unwrap())
    };
    assert_eq!(under(RunState::Queued), [1, 3]);
    assert_eq!(under(RunState::Running), [2]);
    assert_eq!(s.events(RunId(2), 0).unwrap().len(), 2);
    assert_eq!(
        s.append_event(RunId(2), &log_event(10, "resumed")).unwrap(),
        2,
        "numbering goes on"
    );
    assert!(
        !s.append_metric(RunId(2), 0, 1, &doc(0, 0.5)).unwrap(),
        "still idempotent"
    );
    assert_eq!(s.metrics(RunId(2)).unwrap().len(), 1);
    let (meta, bytes) = s.latest_checkpoint(RunId(2)).unwrap().unwrap();
    assert_eq!((meta.epoch, meta.chunks), (0, 4));
    assert!(bytes == big);
}

#[test]
fn corrupt_records_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = reopen(&path);
        s.put_run(&run(7, 1, "ana", RunState::Queued)).unwrap();
    }
    {
        let raw = ::sled::open(&path).unwrap();
        raw.open_tree("runs")
            .unwrap()
            .insert(7u64.to_be_bytes(), &b"{garbage"[..])
            .unwrap();
        let metric_key = [&7u64.to_be_bytes()[..], &1u32.to_be_bytes()[..]].concat();
        raw.open_tree("metrics")
            .unwrap()
            .insert(metric_key, &b""[..])
            .unwrap();
        raw.open_tree("meta")
            .unwrap()
            .insert("next_run_id", &b"abc"[..])
            .unwrap();
        raw.flush().unwrap();
    }
    let s = reopen(&path);
    let err = s.get_run(RunId(7)).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("runs/7"), "{err}");
    let queued = RunFilter {
        state: Some(RunState::Queued),
        ..Default::default()
    };
    assert!(
        s.list_runs(&queued)
            .unwrap_err()
            .to_string()
            .contains("runs/7")
    );
    assert!(s.list_runs(&RunFilter::default()).is_err());
    let err = s.put_run(&run(7, 1, "ana", RunState::Running)).unwrap_err();
    assert!(
        err.to_string().contains("runs/7"),
        "replacing a corrupt run is refused: {err}"
    );
    let err = s.metrics(RunId(7)).unwrap_err();
    assert!(err.to_string().contains("metrics/run 7/epoch 1"), "{err}");
    let err = s.next_run_id().unwrap_err();
    assert!(err.to_string().contains("next_run_id"), "{err}");
}

/// Briefs are stored as MessagePack by position now; a brief a store wrote as JSON or as
/// MessagePack by name before still lists, each form read side by side.
#[test]
fn briefs_stored_as_json_before_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (old, named, new) = (
        run(7, 1, "ana", RunState::Queued),
        run(8, 1, "bo", RunState::Running),
        run(9, 1, "bo", RunState::Queued),
    );
    {
        let s = reopen(&path);
        for r in [&old, &named, &new] {
            s.put_run(r).unwrap();
        }
    }
    {
        let raw = ::sled::open(&path).unwrap();
        let briefs = raw.open_tree("run_briefs").unwrap();
        let stored = briefs.get(9u64.to_be_bytes()).unwrap().unwrap();
        assert_eq!(
            stored[0], 0xdc,
            "new briefs are MessagePack arrays (fields by position)"
        );
        let json = serde_json::to_vec(&RunBrief::of(&old)).unwrap();
        briefs.insert(7u64.to_be_bytes(), json).unwrap();
        let by_name = rmp_serde::to_vec_named(&RunBrief::of(&named)).unwrap();
        assert_eq!(by_name[0], 0xde);
        briefs.insert(8u64.to_be_bytes(), by_name).unwrap();
        raw.flush().unwrap();
    }
    let s = reopen(&path);
    assert_eq!(
        s.list_run_briefs(&RunFilter::default()).unwrap(),
        [RunBrief::of(&old), RunBrief::of(&named), RunBrief::of(&new)]
    );
}

/// The stored layout of a brief is its fields in order: one written before the last fields
/// were appended (here: without `facts`, `coordinates`, `gpu_memory`, `batch_job`) reads with
/// their defaults, and the layout of today's brief is pinned byte for byte, so a reordered,
/// removed or retyped field fails here before it misreads stored briefs.
#[test]
fn a_brief_stored_before_its_last_fields_reads_with_their_defaults() {
    let mut r = run(7, 3, "ana", RunState::Queued);
    r.request.gpus = 1;
    r.pending_reason = Some("no gpu".into());
    let brief = RunBrief::of(&r);
    let stored = rmp_serde::to_vec(&brief).unwrap();
    // Pinned: an array of 23; id, experiment, name, user, config hash, engine, state, ...
    let head = [
        &[0xdc, 0x00, 23, 7, 3, 0xac][..],
        b"exp-3/seed=7",
        &[0xa3],
        b"ana",
        &[0xa2],
        b"00",
        &[0xa0, 0xa6],
        b"queued",
    ]
    .concat();
    assert_eq!(&stored[..head.len()], head, "{stored:02x?}");
    let tail: &[u8] = &[0xc0, 0x90, 0x93, 0xc0, 0xc0, 0xc2, 0xc0];
    assert_eq!(&stored[stored.len() - tail.len()..], tail, "{stored:02x?}");
    let mut older = vec![0xdc, 0x00, 19];
    older.extend_from_slice(&stored[3..stored.len() - tail.len()]);
    let read: RunBrief = rmp_serde::from_slice(&older).unwrap();
    assert_eq!(read, brief);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    reopen(&path).put_run(&r).unwrap();
    {
        let raw = ::sled::open(&path).unwrap();
        let briefs = raw.open_tree("run_briefs").unwrap();
        assert_eq!(briefs.get(7u64.to_be_bytes()).unwrap().unwrap(), stored);
        briefs.insert(7u64.to_be_bytes(), older).unwrap();
        raw.flush().unwrap();
    }
    assert_eq!(reopen(&path).get_run_brief(RunId(7)).unwrap(), Some(brief));
}

#[test]
fn open_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = SledStore::open(&file, StoreConfig::default()).unwrap_err();
    assert!(matches!(err, StoreError::Sled { op: "open", .. }), "{err}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[test]
fn concurrent_writers_get_contiguous_event_numbers() {
    let (s, _dir) = new_sled();
    let s = Arc::new(s);
    s.put_run(&run(1, 1, "ana", RunState::Running)).unwrap();
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        s.append_event(RunId(1), &log_event(t * 100 + i, "x"))
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..40).collect::<Vec<_>>());
    assert_eq!(s.events(RunId(1), 0).unwrap().len(), 40);
}

#[test]
fn a_metric_with_its_event_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let epoch = |epoch| Event {
        at: 50,
        kind: EventKind::Epoch {
            epoch,
            stage: 1,
            attempt: 1,
        },
    };
    {
        let s = reopen(&path);
        s.put_run(&run(1, 1, "ana", RunState::Running)).unwrap();
        s.append_event(RunId(1), &log_event(1, "started")).unwrap();
        assert_eq!(
            s.append_metric_with_event(RunId(1), 1, 1, &doc(0, 0.5), &epoch(1))
                .unwrap(),
            Some(1)
        );
    }
    let s = reopen(&path);
    assert_eq!(s.events(RunId(1), 1).unwrap(), [(1, epoch(1))]);
    assert_eq!(
        s.metrics(RunId(1)).unwrap(),
        [MetricPoint {
            epoch: 1,
            stage: 1,
            doc: doc(0, 0.5)
        }]
    );
    assert_eq!(
        s.append_metric_with_event(RunId(1), 1, 1, &doc(1, 0.0), &epoch(1))
            .unwrap(),
        None,
        "still a duplicate after a restart"
    );
    assert_eq!(
        s.append_metric_with_event(RunId(1), 2, 1, &doc(2, 0.0), &epoch(2))
            .unwrap(),
        Some(2),
        "numbering goes on"
    );
    assert_eq!(s.events(RunId(1), 0).unwrap().len(), 3);
}

/// Opening waits for a store that is still closing: sled keeps the database's file lock until
/// its last background thread lets go, a moment after the store is dropped. Here the first
/// store is held for 300 ms while the second opens; before the wait, that open failed at once
/// ("could not acquire lock"), which made reopen-right-after-drop tests flaky.
#[test]
fn opening_waits_for_a_store_that_is_still_closing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let first = reopen(&path);
    first.next_experiment_id().unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(first);
    });
    let started = std::time::Instant::now();
    let second = reopen(&path);
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    assert_eq!(second.next_experiment_id().unwrap(), ExperimentId(2));
    holder.join().unwrap();
}

/// A report of many epochs is one entry for its metrics and one for its events (a span); a
/// lone epoch is stored exactly as every store before spans stored it, so entries an older
/// daemon wrote read beside spans, across a reopen.
#[test]
fn spans_and_single_entries_read_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let event = |epoch: u32| Event {
        at: 7,
        kind: EventKind::Epoch {
            epoch,
            stage: 1,
            attempt: 1,
        },
    };
    let writes = |epochs: std::ops::RangeInclusive<u32>| -> Vec<EpochWrite> {
        epochs
            .map(|e| EpochWrite {
                epoch: e,
                stage: 1,
                doc: EpochDoc::parse("test", doc(e, 0.5)).unwrap(),
                event: event(e),
            })
            .collect()
    };
    {
        let s = reopen(&path);
        s.put_run(&run(7, 1, "ana", RunState::Running)).unwrap();
        assert_eq!(
            s.append_metric_with_event(RunId(7), 1, 1, &doc(1, 0.5), &event(1))
                .unwrap(),
            Some(0)
        );
        let seqs = s
            .append_metrics_with_events(RunId(7), &writes(2..=17))
            .unwrap();
        assert_eq!(seqs, (1..=16).map(Some).collect::<Vec<_>>());
    }
    {
        let raw = ::sled::open(&path).unwrap();
        let metrics = raw.open_tree("metrics").unwrap();
        let keys: Vec<Vec<u8>> = metrics.iter().keys().map(|k| k.unwrap().to_vec()).collect();
        assert_eq!(
            keys,
            [
                keys::run_epoch(RunId(7), 1).to_vec(),
                keys::epoch_span(RunId(7), 2).to_vec()
            ]
        );
        let lone = metrics.get(keys::run_epoch(RunId(7), 1)).unwrap().unwrap();
        assert_eq!(lone.to_vec(), [&[1u8][..], &doc(1, 0.5)].concat());
        let events = raw.open_tree("events").unwrap();
        let keys: Vec<Vec<u8>> = events.iter().keys().map(|k| k.unwrap().to_vec()).collect();
        assert_eq!(
            keys,
            [
                keys::pair(7, 0).to_vec(),
                keys::event_span(RunId(7), 1).to_vec()
            ]
        );
        // Epoch 18 as a daemon before spans stored it: its own metric and event entries.
        let old = [&[1u8][..], &doc(18, 0.25)].concat();
        metrics.insert(keys::run_epoch(RunId(7), 18), old).unwrap();
        let json = serde_json::to_vec(&event(18)).unwrap();
        events.insert(keys::pair(7, 17), json).unwrap();
        raw.flush().unwrap();
    }
    let s = reopen(&path);
    let seqs = s
        .append_metrics_with_events(RunId(7), &writes(18..=20))
        .unwrap();
    assert_eq!(seqs, [None, Some(18), Some(19)]);
    let epochs: Vec<(u32, Vec<u8>)> = s
        .metrics(RunId(7))
        .unwrap()
        .into_iter()
        .map(|m| (m.epoch, m.doc))
        .collect();
    let loss = |e| if e == 18 { 0.25 } else { 0.5 };
    let want: Vec<(u32, Vec<u8>)> = (1..=20).map(|e| (e, doc(e, loss(e)))).collect();
    assert_eq!(epochs, want);
    assert_eq!(s.metric(RunId(7), 18).unwrap().unwrap().doc, doc(18, 0.25));
    assert_eq!(s.last_epoch(RunId(7)).unwrap(), 20);
    let events = s.events(RunId(7), 5).unwrap();
    let want: Vec<(u64, Event)> = (5..=19).map(|q| (q, event(q as u32 + 1))).collect();
    assert_eq!(events, want);
    assert_eq!(s.append_event(RunId(7), &log_event(9, "x")).unwrap(), 20);
}

/// A span that does not read is an error naming its key, on every read that meets it.
#[test]
fn a_corrupt_span_is_an_error_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = reopen(&path);
        s.put_run(&run(7, 1, "ana", RunState::Running)).unwrap();
    }
    {
        let raw = ::sled::open(&path).unwrap();
        let cut = [&3u32.to_be_bytes()[..], &[1, 0, 0, 0, 9, 1]].concat();
        raw.open_tree("metrics")
            .unwrap()
            .insert(keys::epoch_span(RunId(7), 2), cut.as_slice())
            .unwrap();
        raw.open_tree("events")
            .unwrap()
            .insert(keys::event_span(RunId(7), 0), &0u32.to_be_bytes()[..])
            .unwrap();
        raw.flush().unwrap();
    }
    let s = reopen(&path);
    for err in [
        s.metrics(RunId(7)).unwrap_err(),
        s.metric(RunId(7), 3).unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(
            err.to_string().contains("metrics/run 7/epoch 2 and on"),
            "{err}"
        );
        assert!(err.to_string().contains("cut short"), "{err}");
    }
    for err in [
        s.events(RunId(7), 0).unwrap_err(),
        s.append_event(RunId(7), &log_event(1, "x")).unwrap_err(),
    ] {
        assert!(err.to_string().contains("events/7/0 and on"), "{err}");
        assert!(err.to_string().contains("empty span"), "{err}");
    }
}
