//! The sled store's per-epoch metrics, keyed (run, epoch) so a scan returns them in epoch order;
//! each value is the stage byte then the epoch in its stored encoding (`StoredEpoch`). An epoch is stored once: a resent one writes
//! nothing. A reported epoch and its `Epoch` event go in one transaction and one flush, shared
//! with every report waiting at the same time (the ingestion path, `sled_ingest`). `impl Store for SledStore` delegates here.

use super::keys;
use super::sled_ingest::Point;
use super::sled_store::{SledStore, encode};
use super::{EpochDoc, EpochWrite, Event, MetricPoint, Result, RunId, StoreError, check_epoch_doc};

/// A metric as stored: the stage byte, then the encoded epoch.
fn metric_value(stage: u8, doc: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(doc.len() + 1);
    value.push(stage);
    value.extend_from_slice(doc);
    value
}

impl SledStore {
    pub(super) fn store_metric(
        &self,
        run: RunId,
        epoch: u32,
        stage: u8,
        doc: &[u8],
    ) -> Result<bool> {
        const OP: &str = "append_metric";
        check_epoch_doc(OP, doc)?;
        {
            let _w = self.write_lock();
            self.writable(OP, None)?;
        }
        self.run_exists(OP, run)?;
        let value = metric_value(stage, doc);
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
                (Some(epoch), Some((&stage, doc))) => out.push(MetricPoint {
                    epoch,
                    stage,
                    doc: doc.to_vec(),
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
            Some((&stage, doc)) => Ok(Some(MetricPoint {
                epoch,
                stage,
                doc: doc.to_vec(),
            })),
            None => Err(StoreError::Corrupt {
                op: OP,
                key: keys::describe("metrics", &key),
                reason: "empty metric value".into(),
            }),
        }
    }

    /// One epoch and its event, through the batching of `sled_ingest` (one transaction and
    /// one flush for every report waiting at the same time).
    pub(super) fn store_metric_with_event(
        &self,
        run: RunId,
        epoch: u32,
        stage: u8,
        doc: &[u8],
        event: &Event,
    ) -> Result<Option<u64>> {
        const OP: &str = "append_metric_with_event";
        let doc = EpochDoc::parse(OP, doc.to_vec())?;
        let point = self.point(OP, run, epoch, stage, &doc, event)?;
        let stored = self.ingest(run, vec![point])?;
        Ok(stored.into_iter().next().flatten())
    }

    /// Several epochs of one run in one request of the batch: all stored together or none.
    pub(super) fn store_metrics_with_events(
        &self,
        run: RunId,
        points: &[EpochWrite],
    ) -> Result<Vec<Option<u64>>> {
        const OP: &str = "append_metrics_with_events";
        let points = points
            .iter()
            .map(|p| self.point(OP, run, p.epoch, p.stage, &p.doc, &p.event))
            .collect::<Result<Vec<_>>>()?;
        self.ingest(run, points)
    }

    /// An epoch encoded for `sled_ingest`.
    fn point(
        &self,
        op: &'static str,
        run: RunId,
        epoch: u32,
        stage: u8,
        doc: &EpochDoc,
        event: &Event,
    ) -> Result<Point> {
        Ok(Point {
            key: keys::run_epoch(run, epoch),
            value: metric_value(stage, doc.as_bytes()),
            event: encode(op, || format!("event of run {run}"), &event.bounded())?,
        })
    }
}
