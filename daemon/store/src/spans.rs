//! Spans: consecutive epochs (or events) of one run stored under ONE sled key, so that a report
//! of 16 epochs costs sled a few inserts instead of 32. Ingestion spent most of its time in
//! sled's per-insert work (a leaf cloned on every insert and split every 16 entries); with spans
//! the 64-worker ingestion bench roughly doubled. A single epoch or event keeps the key and value
//! it always had, so a store written before spans existed reads unchanged.
//!
//! - Metrics: a single epoch is `(run, epoch)` -> `[stage][doc]`; a span is
//!   `(run, first, SPAN)` -> `[count: u32]` then per epoch `[stage][len: u32][doc]`, holding
//!   epochs `first .. first + count`.
//! - Events: a single event is `(run, seq)` -> its JSON; a span is `(run, first, SPAN)` ->
//!   `[count: u32]` then per event `[len: u32][json]`, holding seqs `first .. first + count`.
//!
//! Entries of one run never overlap: epochs are spanned only when none of them is stored (the
//! writer checks under the writer lock), events only as the writer numbers them. So the entry
//! holding a number is the last one whose first number is not above it.

use super::keys;
use cauda_model::RunId;

/// The most bytes one span's value holds (one entry may exceed it alone). sled writes a whole
/// leaf (up to 17 entries) as one log message when it rewrites it, and a message over a quarter
/// of a segment (128 KiB) goes to a file of its own; 17 spans of 4 KiB stay well below.
pub(super) const SPAN_BYTES: usize = 4096;

/// A key and value to insert.
pub(super) type Entry = (Vec<u8>, Vec<u8>);

/// Why a stored entry does not read as a single entry or a span.
pub(super) type Malformed = String;

/// An epoch as an entry holds it: its stage and its stored doc.
pub(super) type Staged<'a> = (u8, &'a [u8]);

/// A span's count and a reader past it, or `None` for a single entry (a `single_len`-byte key;
/// a span's is one byte longer, ending in `SPAN`).
fn header<'a>(
    key: &[u8],
    value: &'a [u8],
    single_len: usize,
) -> Result<Option<(usize, Reader<'a>)>, Malformed> {
    if key.len() == single_len {
        return Ok(None);
    }
    if key.len() != single_len + 1 || key.last() != Some(&keys::SPAN) {
        return Err(format!("a key of {} bytes", key.len()));
    }
    let mut r = Reader(value);
    match r.u32()? {
        0 => Err("an empty span".into()),
        n => Ok(Some((n as usize, r))),
    }
}

/// How many items an entry holds (1 for a single entry), without reading them.
fn count(key: &[u8], value: &[u8], single_len: usize) -> Result<usize, Malformed> {
    Ok(header(key, value, single_len)?.map_or(1, |(count, _)| count))
}

/// An entry's items, from its key and value: a single entry (`single` reads the value) or a
/// span (`framed` reads each item).
fn items<'a, T>(
    key: &[u8],
    value: &'a [u8],
    single_len: usize,
    single: impl Fn(&'a [u8]) -> Result<T, Malformed>,
    framed: impl Fn(&mut Reader<'a>) -> Result<T, Malformed>,
) -> Result<Vec<T>, Malformed> {
    let Some((count, mut r)) = header(key, value, single_len)? else {
        return Ok(vec![single(value)?]);
    };
    let mut out = Vec::with_capacity(count.min(value.len()));
    for _ in 0..count {
        out.push(framed(&mut r)?);
    }
    if !r.0.is_empty() {
        return Err(format!("{} bytes after the span's last item", r.0.len()));
    }
    Ok(out)
}

/// The epochs of a metrics entry: the first epoch, and each epoch's stage and stored doc.
pub(super) fn epochs<'a>(key: &[u8], value: &'a [u8]) -> Result<(u32, Vec<Staged<'a>>), Malformed> {
    let first = keys::u32_at(key, 8).ok_or("a key too short for an epoch")?;
    let single = |v: &'a [u8]| match v.split_first() {
        Some((&stage, doc)) => Ok((stage, doc)),
        None => Err("an empty metric value".to_string()),
    };
    let framed = |r: &mut Reader<'a>| {
        let stage = r.take(1)?[0];
        let len = r.u32()? as usize;
        Ok((stage, r.take(len)?))
    };
    let items = items(key, value, 12, single, framed)?;
    last_of(first, items.len())?;
    Ok((first, items))
}

/// The epochs a metrics entry holds, `first..=last`, read from its key and count only.
pub(super) fn epoch_range(key: &[u8], value: &[u8]) -> Result<(u32, u32), Malformed> {
    let first = keys::u32_at(key, 8).ok_or("a key too short for an epoch")?;
    let count = count(key, value, 12)?;
    Ok((first, last_of(first, count)?))
}

/// The events of an events entry: the first seq, and each event's JSON.
pub(super) fn events<'a>(key: &[u8], value: &'a [u8]) -> Result<(u64, Vec<&'a [u8]>), Malformed> {
    let first = keys::trailing_u64(&key[..key.len().min(16)]).ok_or("a key too short for a seq")?;
    let framed = |r: &mut Reader<'a>| {
        let len = r.u32()? as usize;
        r.take(len)
    };
    let items = items(key, value, 16, Ok, framed)?;
    first
        .checked_add(items.len() as u64 - 1)
        .ok_or("a span past the last seq")?;
    Ok((first, items))
}

/// The seqs an events entry holds, `first..=last`, read from its key and count only.
pub(super) fn event_range(key: &[u8], value: &[u8]) -> Result<(u64, u64), Malformed> {
    let first = keys::trailing_u64(&key[..key.len().min(16)]).ok_or("a key too short for a seq")?;
    let count = count(key, value, 16)? as u64;
    let last = first
        .checked_add(count - 1)
        .ok_or("a span past the last seq")?;
    Ok((first, last))
}

fn last_of(first: u32, count: usize) -> Result<u32, Malformed> {
    u32::try_from(count - 1)
        .ok()
        .and_then(|n| first.checked_add(n))
        .ok_or_else(|| "a span past the last epoch".into())
}

/// Consecutive epochs of `run` from `first` (each its stage and doc) as entries to insert: a
/// lone epoch as a single entry, the others in spans of at most `SPAN_BYTES`.
pub(super) fn epoch_entries(run: RunId, first: u32, items: &[(u8, &[u8])]) -> Vec<Entry> {
    let size = |(_, doc): &(u8, &[u8])| 5 + doc.len();
    let mut out = Vec::new();
    let mut epoch = first;
    for group in groups(items, size) {
        if let [(stage, doc)] = group {
            let mut value = Vec::with_capacity(doc.len() + 1);
            value.push(*stage);
            value.extend_from_slice(doc);
            out.push((keys::run_epoch(run, epoch).to_vec(), value));
        } else {
            let mut value = (group.len() as u32).to_be_bytes().to_vec();
            for (stage, doc) in group {
                value.push(*stage);
                value.extend_from_slice(&(doc.len() as u32).to_be_bytes());
                value.extend_from_slice(doc);
            }
            out.push((keys::epoch_span(run, epoch).to_vec(), value));
        }
        epoch += group.len() as u32;
    }
    out
}

/// Events of `run` numbered from `first` as entries to insert: a lone event as a single entry,
/// the others in spans of at most `SPAN_BYTES`.
pub(super) fn event_entries(run: RunId, first: u64, items: &[&[u8]]) -> Vec<Entry> {
    let size = |json: &&[u8]| 4 + json.len();
    let mut out = Vec::new();
    let mut seq = first;
    for group in groups(items, size) {
        if let [json] = group {
            out.push((keys::pair(run.0, seq).to_vec(), json.to_vec()));
        } else {
            let mut value = (group.len() as u32).to_be_bytes().to_vec();
            for json in group {
                value.extend_from_slice(&(json.len() as u32).to_be_bytes());
                value.extend_from_slice(json);
            }
            out.push((keys::event_span(run, seq).to_vec(), value));
        }
        seq += group.len() as u64;
    }
    out
}

/// `items` cut into consecutive groups of at most `SPAN_BYTES` by `size` (at least one each).
fn groups<T>(items: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 4);
    for (i, item) in items.iter().enumerate() {
        let n = size(item);
        if i > start && bytes + n > SPAN_BYTES {
            out.push(&items[start..i]);
            (start, bytes) = (i, 4);
        }
        bytes += n;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// Reads a span's value front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(format!("a span cut short ({} of {n} bytes)", self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        let bytes: [u8; 4] = self.take(4)?.try_into().map_err(|_| "a length")?;
        Ok(u32::from_be_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_round_trip_alone_and_in_spans() {
        let docs: Vec<Vec<u8>> = (0..9u8).map(|i| vec![i; 1000]).collect();
        let items: Vec<(u8, &[u8])> = docs.iter().map(|d| (1, d.as_slice())).collect();
        let entries = epoch_entries(RunId(7), 5, &items);
        // 4 KiB spans of 1 KiB docs (1,005 bytes an item after 4 of count): 4 + 4 + 1 epochs.
        let lens: Vec<usize> = entries
            .iter()
            .map(|(k, v)| {
                epoch_range(k, v)
                    .map(|(a, b)| (b - a + 1) as usize)
                    .unwrap()
            })
            .collect();
        assert_eq!(lens, [4, 4, 1]);
        let mut back = Vec::new();
        for (k, v) in &entries {
            let (first, items) = epochs(k, v).unwrap();
            for (i, (stage, doc)) in items.into_iter().enumerate() {
                back.push((first + i as u32, stage, doc.to_vec()));
            }
        }
        let want: Vec<_> = (0..9u8)
            .map(|i| (5 + u32::from(i), 1, vec![i; 1000]))
            .collect();
        assert_eq!(back, want);
        // The last group alone is a single entry, as every epoch was stored before spans.
        assert_eq!(entries[2].0, keys::run_epoch(RunId(7), 13).to_vec());
        assert_eq!(entries[2].1[0], 1);
    }

    #[test]
    fn events_round_trip_alone_and_in_spans() {
        let owned: Vec<Vec<u8>> = (0..3)
            .map(|i| format!("{{\"e\":{i}}}").into_bytes())
            .collect();
        let items: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        let entries = event_entries(RunId(2), 40, &items);
        assert_eq!(entries.len(), 1);
        let (k, v) = &entries[0];
        assert_eq!(event_range(k, v).unwrap(), (40, 42));
        let (first, back) = events(k, v).unwrap();
        assert_eq!(first, 40);
        assert_eq!(back, items);
        let alone = event_entries(RunId(2), 9, &items[..1]);
        assert_eq!(alone, [(keys::pair(2, 9).to_vec(), owned[0].clone())]);
        assert_eq!(event_range(&alone[0].0, &alone[0].1).unwrap(), (9, 9));
    }

    #[test]
    fn malformed_entries_are_told_apart() {
        let key = keys::epoch_span(RunId(1), 3);
        assert!(epochs(&key, &[]).unwrap_err().contains("cut short"));
        assert!(
            epochs(&key, &0u32.to_be_bytes())
                .unwrap_err()
                .contains("empty span")
        );
        let mut v = 1u32.to_be_bytes().to_vec();
        v.extend_from_slice(&[1, 0, 0, 0, 9, 1, 2]);
        assert!(epochs(&key, &v).unwrap_err().contains("cut short"));
        v = 1u32.to_be_bytes().to_vec();
        v.extend_from_slice(&[1, 0, 0, 0, 1, 7, 8]);
        assert!(epochs(&key, &v).unwrap_err().contains("after the span"));
        assert!(
            epochs(&keys::run_epoch(RunId(1), 3), &[])
                .unwrap_err()
                .contains("empty")
        );
        assert!(epochs(&[0; 14], &[1]).unwrap_err().contains("14 bytes"));
        let far = keys::epoch_span(RunId(1), u32::MAX);
        let mut two = 2u32.to_be_bytes().to_vec();
        two.extend_from_slice(&[1, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert!(
            epoch_range(&far, &two)
                .unwrap_err()
                .contains("past the last")
        );
    }
}
