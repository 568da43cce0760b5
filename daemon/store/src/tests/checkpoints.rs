//! The shared suite's cases on checkpoints: chunking, byte-exact reads, and retention of the
//! last K plus the best.

use super::*;

pub(super) fn checkpoints_chunk_and_retain(s: &dyn Store) {
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
