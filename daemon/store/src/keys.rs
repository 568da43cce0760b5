//! Byte keys of the sled trees: big-endian integers so that sled's byte order is numeric order,
//! and a range or prefix scan answers each query (a run's events, metrics, checkpoints; the runs
//! of one experiment, state or user), plus readable names of keys for error messages.

use cauda_model::{RunId, RunState};

/// A single id (experiment or run).
pub(crate) fn id(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// `(a, b)` ids: an index entry (experiment, run) or an event (run, seq).
pub(crate) fn pair(a: u64, b: u64) -> [u8; 16] {
    let mut k = [0; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
    k
}

/// `(run, epoch)`: a metric point or a checkpoint's meta entry.
pub(crate) fn run_epoch(run: RunId, epoch: u32) -> [u8; 12] {
    let mut k = [0; 12];
    k[..8].copy_from_slice(&run.0.to_be_bytes());
    k[8..].copy_from_slice(&epoch.to_be_bytes());
    k
}

/// The byte that ends the key of a span (several epochs or events under one key), so that it
/// sorts right after the single entry of its first number and before the next number's.
pub(crate) const SPAN: u8 = 0xff;

/// `(run, first epoch, SPAN)`: consecutive epochs of a run stored under one key (`spans`).
pub(crate) fn epoch_span(run: RunId, first: u32) -> [u8; 13] {
    let mut k = [SPAN; 13];
    k[..12].copy_from_slice(&run_epoch(run, first));
    k
}

/// `(run, first seq, SPAN)`: consecutive events of a run stored under one key (`spans`).
pub(crate) fn event_span(run: RunId, first: u64) -> [u8; 17] {
    let mut k = [SPAN; 17];
    k[..16].copy_from_slice(&pair(run.0, first));
    k
}

/// `(run, epoch, chunk)`: one chunk of a checkpoint.
pub(crate) fn chunk(run: RunId, epoch: u32, index: u32) -> [u8; 16] {
    let mut k = [0; 16];
    k[..12].copy_from_slice(&run_epoch(run, epoch));
    k[12..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The byte a state sorts under in the state index.
pub(crate) fn state_byte(state: RunState) -> u8 {
    match state {
        RunState::Queued => 0,
        RunState::Running => 1,
        RunState::Succeeded => 2,
        RunState::Failed => 3,
        RunState::Cancelled => 4,
    }
}

/// `(state, run)`: an entry of the state index.
pub(crate) fn state_run(state: RunState, run: RunId) -> [u8; 9] {
    let mut k = [0; 9];
    k[0] = state_byte(state);
    k[1..].copy_from_slice(&run.0.to_be_bytes());
    k
}

/// The prefix of a user's entries in the user index: the name's length then its bytes, so that
/// no user's prefix is a prefix of another's.
pub(crate) fn user_prefix(user: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + user.len() + 8);
    k.extend_from_slice(&(user.len() as u64).to_be_bytes());
    k.extend_from_slice(user.as_bytes());
    k
}

/// `(user, run)`: an entry of the user index.
pub(crate) fn user_run(user: &str, run: RunId) -> Vec<u8> {
    let mut k = user_prefix(user);
    k.extend_from_slice(&run.0.to_be_bytes());
    k
}

/// The big-endian u64 that ends `key` (the run id of an index entry, the seq of an event).
pub(crate) fn trailing_u64(key: &[u8]) -> Option<u64> {
    let start = key.len().checked_sub(8)?;
    let bytes: [u8; 8] = key[start..].try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// The big-endian u32 at `at` in `key` (an epoch).
pub(crate) fn u32_at(key: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = key.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// A key as an error message shows it: the tree, then the key's bytes in hex, grouped as the
/// big-endian integers they encode where the length says so.
pub(crate) fn describe(tree: &str, key: &[u8]) -> String {
    let hex = cauda_plugins::hex::ToHex::to_hex(key);
    match key.len() {
        8 => format!(
            "{tree}/{}",
            u64::from_be_bytes(key.try_into().unwrap_or([0; 8]))
        ),
        12 => match (trailing_u64(&key[..8]), u32_at(key, 8)) {
            (Some(run), Some(epoch)) => format!("{tree}/run {run}/epoch {epoch}"),
            _ => format!("{tree}/{hex}"),
        },
        16 => match (trailing_u64(&key[..8]), trailing_u64(key)) {
            (Some(a), Some(b)) => format!("{tree}/{a}/{b}"),
            _ => format!("{tree}/{hex}"),
        },
        13 | 17 if key.last() == Some(&SPAN) => {
            let head = &key[..key.len() - 1];
            format!("{} and on", describe(tree, head))
        }
        _ => format!("{tree}/{hex}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_numeric_order() {
        assert!(id(255) < id(256));
        assert!(pair(1, u64::MAX) < pair(2, 0));
        assert!(run_epoch(RunId(1), 9) < run_epoch(RunId(1), 10));
        assert!(chunk(RunId(1), 2, 300) < chunk(RunId(1), 3, 0));
        // A span sorts after the single entry of its first number, before the next number.
        assert!(run_epoch(RunId(1), 9)[..] < epoch_span(RunId(1), 9)[..]);
        assert!(epoch_span(RunId(1), 9)[..] < run_epoch(RunId(1), 10)[..]);
        assert!(epoch_span(RunId(1), u32::MAX)[..] < run_epoch(RunId(2), 0)[..]);
        assert!(pair(1, 9)[..] < event_span(RunId(1), 9)[..]);
        assert!(event_span(RunId(1), 9)[..] < pair(1, 10)[..]);
        assert!(
            state_run(RunState::Queued, RunId(u64::MAX)) < state_run(RunState::Running, RunId(0))
        );
        // "ab" must not see "a"'s entries under its prefix, nor the reverse.
        assert!(!user_run("ab", RunId(1)).starts_with(&user_prefix("a")));
        assert!(!user_run("a", RunId(1)).starts_with(&user_prefix("ab")));
    }

    #[test]
    fn keys_decode_and_describe() {
        assert_eq!(trailing_u64(&pair(3, 7)), Some(7));
        assert_eq!(trailing_u64(&[1, 2]), None);
        assert_eq!(u32_at(&run_epoch(RunId(4), 12), 8), Some(12));
        assert_eq!(describe("runs", &id(5)), "runs/5");
        assert_eq!(
            describe("metrics", &run_epoch(RunId(4), 12)),
            "metrics/run 4/epoch 12"
        );
        assert_eq!(describe("events", &pair(4, 2)), "events/4/2");
        assert_eq!(
            describe("metrics", &epoch_span(RunId(4), 12)),
            "metrics/run 4/epoch 12 and on"
        );
        assert_eq!(
            describe("events", &event_span(RunId(4), 2)),
            "events/4/2 and on"
        );
    }
}
