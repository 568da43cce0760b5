//! The sled store's per-epoch metrics, keyed (run, epoch) so a scan returns them in epoch order;
//! each value is the stage byte then the JSON. An epoch is stored once: a resent one writes
//! nothing. A reported epoch and its `Epoch` event go in one transaction and one flush (the
//! ingestion path). `impl Store for SledStore` delegates here.

use super::keys;
use super::sled_store::{SledStore, encode};
use super::{Event, MetricPoint, Result, RunId, StoreError, check_metric_json};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

/// A metric as stored: the stage byte, then the JSON.
fn metric_value(stage: u8, json: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(json.len() + 1);
    value.push(stage);
    value.extend_from_slice(json);
    value
}

impl SledStore {
    pub(super) fn store_metric(
        &self,
        run: RunId,
        epoch: u32,
        stage: u8,
        json: &[u8],
    ) -> Result<bool> {
        const OP: &str = "append_metric";
        check_metric_json(OP, json)?;
        {
            let _w = self.write_lock();
            self.writable(OP, None)?;
        }
        self.run_exists(OP, run)?;
        let value = metric_value(stage, json);
        let swapped = self
            .t()?
            .metrics
            .compare_and_swap(
                keys::run_epoch(run, epoch),
                None as Option<&[u8]>,
                Some(value),
            )
            .map_err(self.err(OP))?;
        self.durable(OP)?;
        Ok(swapped.is_ok())
    }

    pub(super) fn read_metrics(&self, run: RunId) -> Result<Vec<MetricPoint>> {
        const OP: &str = "metrics";
        let mut out = Vec::new();
        let t = self.t()?;
        for entry in t.metrics.scan_prefix(keys::id(run.0)) {
            let (k, v) = entry.map_err(self.err(OP))?;
            match (keys::u32_at(&k, 8), v.split_first()) {
                (Some(epoch), Some((&stage, json))) => out.push(MetricPoint {
                    epoch,
                    stage,
                    json: json.to_vec(),
                }),
                _ => {
                    return Err(StoreError::Corrupt {
                        op: OP,
                        key: keys::describe("metrics", &k),
                        reason: "malformed metric key or empty value".into(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The highest stored epoch of a run: the last key of its prefix (no scan).
    pub(super) fn read_last_epoch(&self, run: RunId) -> Result<u32> {
        const OP: &str = "last_epoch";
        let last = self.t()?.metrics.scan_prefix(keys::id(run.0)).next_back();
        match last {
            None => Ok(0),
            Some(entry) => {
                let (k, _) = entry.map_err(self.err(OP))?;
                keys::u32_at(&k, 8).ok_or_else(|| StoreError::Corrupt {
                    op: OP,
                    key: keys::describe("metrics", &k),
                    reason: "malformed metric key".into(),
                })
            }
        }
    }

    /// One stored epoch, by its key (no scan).
    pub(super) fn read_metric(&self, run: RunId, epoch: u32) -> Result<Option<MetricPoint>> {
        const OP: &str = "metric";
        let key = keys::run_epoch(run, epoch);
        let found = self.t()?.metrics.get(key).map_err(self.err(OP))?;
        let Some(v) = found else {
            return Ok(None);
        };
        match v.split_first() {
            Some((&stage, json)) => Ok(Some(MetricPoint {
                epoch,
                stage,
                json: json.to_vec(),
            })),
            None => Err(StoreError::Corrupt {
                op: OP,
                key: keys::describe("metrics", &key),
                reason: "empty metric value".into(),
            }),
        }
    }

    /// One transaction over the runs, metrics and events trees: the run must exist, a stored
    /// epoch aborts nothing but writes nothing, else the metric and the event (numbered after
    /// the run's last event, read under the writer lock) are written together.
    pub(super) fn store_metric_with_event(
        &self,
        run: RunId,
        epoch: u32,
        stage: u8,
        json: &[u8],
        event: &Event,
    ) -> Result<Option<u64>> {
        const OP: &str = "append_metric_with_event";
        check_metric_json(OP, json)?;
        let value = metric_value(stage, json);
        let event = encode(OP, || format!("event of run {run}"), &event.bounded())?;
        let key = keys::run_epoch(run, epoch);
        let (stored, ticket) = {
            // Held from reading the next event number until the transaction has written it;
            // released before the flush so that concurrent reports share it (group commit).
            let _w = self.write_lock();
            self.writable(OP, None)?;
            let seq = self.next_event_seq(OP, run)?;
            let t = self.t()?;
            let stored = (&t.runs, &t.metrics, &t.events)
                .transaction(|(runs, metrics, events)| {
                    if runs.get(keys::id(run.0))?.is_none() {
                        return Err(ConflictableTransactionError::Abort(StoreError::NotFound {
                            op: OP,
                            what: format!("run {run}"),
                        }));
                    }
                    if metrics.get(key)?.is_some() {
                        return Ok(None);
                    }
                    metrics.insert(&key, value.as_slice())?;
                    events.insert(&keys::pair(run.0, seq), event.as_slice())?;
                    Ok(Some(seq))
                })
                .map_err(self.tx_err(OP))?;
            (stored, self.applied())
        };
        // Also for a duplicate: the stored epoch it saw may be a concurrent call's, not yet
        // flushed, and the caller acts on "already stored".
        self.wait_for(OP, ticket)?;
        Ok(stored)
    }
}
