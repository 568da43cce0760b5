//! Group commit of reported epochs (the ingestion path): every report that arrives while a batch
//! is being written joins the next batch, and a batch is ONE sled transaction over the runs,
//! metrics and events trees plus one shared flush. With 64 workers reporting at once, one
//! transaction per report spent more time in sled's transaction machinery than in the fsync.
//!
//! Leader/follower (`handoff`), with no thread of its own: a caller queues its request; when no batch is
//! being applied it becomes the leader, takes every queued request and writes them in one
//! transaction (under the writer lock, so event numbers stay contiguous with `commit`), then
//! hands the lead on, so that the next batch is applied while this one is flushed; once the
//! flush returned (`group_flush`) it hands each request its own outcome, waking each once.
//! Each request is judged alone inside the transaction (an unknown run fails that request only,
//! a stored epoch is a duplicate), and nobody hears "stored" before the flush returned. When the
//! transaction itself fails, every request of the batch is retried alone, so each caller gets
//! the error of a write of its own.

use std::collections::{BTreeSet, HashMap};

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::handoff::{Handoff, Joined};
use super::keys;
use super::sled_store::SledStore;
use super::spans;
use super::{Result, RunId, StoreError};

/// One epoch of a request, encoded: its epoch, stage and stored doc, and its event's JSON.
pub(super) struct Point {
    pub(super) epoch: u32,
    pub(super) stage: u8,
    pub(super) doc: Vec<u8>,
    pub(super) event: Vec<u8>,
}

/// What a request writes once judged against the store: its new epochs' entries and their
/// events' entries (`spans`), and per epoch its event's seq or `None` (a duplicate).
struct Planned {
    run: RunId,
    metrics: Vec<spans::Entry>,
    events: Vec<spans::Entry>,
    stored: Vec<Option<u64>>,
}

/// What one request gets back: per epoch, the event's sequence number, or `None` (a duplicate).
type Outcome = Result<Vec<Option<u64>>>;

/// One request waiting for its batch: the run and its encoded epochs.
type Request = (RunId, Vec<Point>);

/// The reported epochs' batching state of one store (`handoff`: leader/follower, each waiting
/// report woken once).
pub(super) struct IngestQueue(Handoff<Request, Outcome>);

impl Default for IngestQueue {
    fn default() -> Self {
        Self(Handoff::new(|| {
            Err(StoreError::Invalid {
                op: "append_metric_with_event",
                reason: "the thread writing this batch panicked; nothing is acknowledged".into(),
            })
        }))
    }
}

impl std::fmt::Debug for IngestQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestQueue").finish_non_exhaustive()
    }
}

impl SledStore {
    /// Stores `points` of `run` (each once) with their events, in the next batch; returns
    /// once they are durable.
    pub(super) fn ingest(&self, run: RunId, points: Vec<Point>) -> Outcome {
        match self.ingest.0.join((run, points)) {
            Joined::Answered(outcome) => outcome,
            Joined::Lead(mut lead) => {
                let (batch, taken) = lead.take();
                let applied = self.apply_under_lock(&batch);
                // The next batch may be applied while this one's flush runs (pipelining); the
                // flushes themselves are shared through `group_flush`.
                lead.hand_on();
                let outcomes = self.settle_batch(&batch, applied);
                taken.answer(outcomes)
            }
        }
    }

    /// Writes a batch in one transaction and waits for its flush; one outcome per request.
    fn write_batch(&self, batch: &[Request]) -> Vec<Outcome> {
        let applied = self.apply_under_lock(batch);
        self.settle_batch(batch, applied)
    }

    /// The batch's transaction under the writer lock, and the ticket of its flush.
    fn apply_under_lock(&self, batch: &[Request]) -> Result<(Vec<Outcome>, super::Ticket)> {
        const OP: &str = "append_metric_with_event";
        let _w = self.write_lock();
        self.writable(OP, None)?;
        let outcomes = self.apply_batch(OP, batch)?;
        Ok((outcomes, self.applied()))
    }

    /// Waits for an applied batch's flush: each request gets its outcome only once durable.
    /// A batch whose transaction failed is written again request by request.
    fn settle_batch(
        &self,
        batch: &[Request],
        applied: Result<(Vec<Outcome>, super::Ticket)>,
    ) -> Vec<Outcome> {
        const OP: &str = "append_metric_with_event";
        match applied {
            Ok((outcomes, ticket)) => match self.wait_for(OP, ticket) {
                Ok(()) => outcomes,
                // Applied but not durable: nobody of the batch is told it was stored.
                Err(e) => batch.iter().map(|_| Err(copy_error(&e))).collect(),
            },
            Err(_) if batch.len() > 1 => self.write_alone(batch),
            Err(e) => vec![Err(e)],
        }
    }

    /// Every request of a failed batch written on its own, so each gets its own error.
    fn write_alone(&self, batch: &[Request]) -> Vec<Outcome> {
        batch
            .iter()
            .map(|(run, points)| {
                let one = [(*run, points_ref(points))];
                self.write_batch(&one)
                    .pop()
                    .unwrap_or_else(|| Ok(Vec::new()))
            })
            .collect()
    }

    /// The transaction: per request, the run must exist and each epoch not yet stored; event
    /// numbers continue each run's log. Judged before the transaction, under the writer lock
    /// (every write of metrics and events takes it), so the transaction only inserts: a few
    /// entries a request, its new epochs in spans.
    fn apply_batch(&self, op: &'static str, batch: &[Request]) -> Result<Vec<Outcome>> {
        let plans = self.plan_batch(op, batch)?;
        let t = self.t()?;
        (&t.runs, &t.metrics, &t.events)
            .transaction(|(runs, metrics, events)| {
                let mut outcomes = Vec::with_capacity(plans.len());
                for plan in &plans {
                    if runs.get(keys::id(plan.run.0))?.is_none() {
                        outcomes.push(Err(StoreError::NotFound {
                            op,
                            what: format!("run {}", plan.run),
                        }));
                        continue;
                    }
                    for (key, value) in &plan.metrics {
                        metrics.insert(key.as_slice(), value.as_slice())?;
                    }
                    for (key, value) in &plan.events {
                        events.insert(key.as_slice(), value.as_slice())?;
                    }
                    outcomes.push(Ok(plan.stored.clone()));
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(outcomes)
            })
            .map_err(self.tx_err(op))
    }

    /// Each request judged in order: an epoch stored before or earlier in the batch is a
    /// duplicate; the others take the run's next seqs in request order and are stored as
    /// spans of consecutive epochs.
    fn plan_batch(&self, op: &'static str, batch: &[Request]) -> Result<Vec<Planned>> {
        let t = self.t()?;
        let mut next_seq: HashMap<RunId, u64> = HashMap::new();
        let mut added: HashMap<RunId, BTreeSet<u32>> = HashMap::new();
        let mut plans = Vec::with_capacity(batch.len());
        for (run, points) in batch {
            let lo = points.iter().map(|p| p.epoch).min().unwrap_or(0);
            let hi = points.iter().map(|p| p.epoch).max().unwrap_or(0);
            let mut held = self.stored_epochs(op, &t.metrics, *run, lo, hi)?;
            held.reverse();
            let seq = match next_seq.get(run) {
                Some(seq) => *seq,
                None => self.next_event_seq(op, *run)?,
            };
            let added = added.entry(*run).or_default();
            let (mut fresh, mut stored, mut events) = (Vec::new(), Vec::new(), Vec::new());
            for p in points {
                // The stored ranges, ascending and disjoint: the one that may hold it.
                let at = held.partition_point(|&(first, _)| first <= p.epoch);
                let before = at > 0 && held[at - 1].1 >= p.epoch;
                if before || !added.insert(p.epoch) {
                    stored.push(None);
                } else {
                    stored.push(Some(seq + events.len() as u64));
                    events.push(p.event.as_slice());
                    fresh.push(p);
                }
            }
            next_seq.insert(*run, seq + events.len() as u64);
            fresh.sort_by_key(|p| p.epoch);
            let mut metrics = Vec::new();
            for consecutive in fresh.chunk_by(|a, b| b.epoch == a.epoch + 1) {
                let items: Vec<(u8, &[u8])> = consecutive
                    .iter()
                    .map(|p| (p.stage, p.doc.as_slice()))
                    .collect();
                metrics.extend(spans::epoch_entries(*run, consecutive[0].epoch, &items));
            }
            plans.push(Planned {
                run: *run,
                metrics,
                events: spans::event_entries(*run, seq, &events),
                stored,
            });
        }
        Ok(plans)
    }
}

/// The same failure for another request of a batch whose flush failed.
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Sled { op, path, source } => StoreError::Sled {
            op,
            path: path.clone(),
            source: source.clone(),
        },
        StoreError::DiskFull { op, path, detail } => StoreError::DiskFull {
            op,
            path: path.clone(),
            detail: detail.clone(),
        },
        other => StoreError::Invalid {
            op: "append_metric_with_event",
            reason: format!("the batch's flush failed: {other}"),
        },
    }
}

/// A copy of a request's points (a failed batch is retried request by request).
fn points_ref(points: &[Point]) -> Vec<Point> {
    points
        .iter()
        .map(|p| Point {
            epoch: p.epoch,
            stage: p.stage,
            doc: p.doc.clone(),
            event: p.event.clone(),
        })
        .collect()
}
