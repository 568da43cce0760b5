//! The sled store's per-epoch metrics, keyed by (run, epoch) so a scan returns them in epoch
//! order: a lone epoch under its own key, consecutive epochs of one report under one key (a
//! span, see `spans`); each epoch is its stage byte and its stored encoding (`StoredEpoch`).
//! An epoch is stored once: a resent one writes nothing. A reported epoch and its `Epoch` event
//! go in one transaction and one flush, shared with every report waiting at the same time (the
//! ingestion path, `sled_ingest`). `impl Store for SledStore` delegates here.

use sled::{IVec, Tree};

use super::keys;
use super::sled_ingest::Point;
use super::sled_store::{SledStore, corrupt_entry, encode};
use super::spans;
use super::{EpochDoc, EpochWrite, Event, MetricPoint, Result, RunId, check_epoch_doc};

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
        let w = self.write_lock();
        self.writable(OP, None)?;
        self.run_exists(OP, run)?;
        let t = self.t()?;
        // Under the writer lock: no other write can store this epoch in between.
        if self.metric_entry(OP, &t.metrics, run, epoch)?.is_some() {
            return Ok(false);
        }
        for (key, value) in spans::epoch_entries(run, epoch, &[(stage, doc)]) {
            t.metrics.insert(key, value).map_err(self.err(OP))?;
        }
        drop((t, w));
        self.durable(OP)?;
        Ok(true)
    }

    pub(super) fn read_metrics(&self, run: RunId) -> Result<Vec<MetricPoint>> {
        const OP: &str = "metrics";
        let mut out = Vec::new();
        let t = self.t()?;
        for entry in t.metrics.scan_prefix(keys::id(run.0)) {
            let (k, v) = entry.map_err(self.err(OP))?;
            let (first, items) = spans::epochs(&k, &v).map_err(corrupt_entry(OP, "metrics", &k))?;
            out.extend(
                items
                    .into_iter()
                    .zip(first..)
                    .map(|((stage, doc), epoch)| MetricPoint {
                        epoch,
                        stage,
                        doc: doc.to_vec(),
                    }),
            );
        }
        Ok(out)
    }

    /// The highest stored epoch of a run: the last epoch of its last entry (no scan).
    pub(super) fn read_last_epoch(&self, run: RunId) -> Result<u32> {
        const OP: &str = "last_epoch";
        let last = self.t()?.metrics.scan_prefix(keys::id(run.0)).next_back();
        match last {
            None => Ok(0),
            Some(entry) => {
                let (k, v) = entry.map_err(self.err(OP))?;
                let (_, last) =
                    spans::epoch_range(&k, &v).map_err(corrupt_entry(OP, "metrics", &k))?;
                Ok(last)
            }
        }
    }

    /// One stored epoch, from the entry holding it (no scan).
    pub(super) fn read_metric(&self, run: RunId, epoch: u32) -> Result<Option<MetricPoint>> {
        const OP: &str = "metric";
        let t = self.t()?;
        let Some((key, value)) = self.metric_entry(OP, &t.metrics, run, epoch)? else {
            return Ok(None);
        };
        let (first, items) =
            spans::epochs(&key, &value).map_err(corrupt_entry(OP, "metrics", &key))?;
        Ok(items
            .get((epoch - first) as usize)
            .map(|&(stage, doc)| MetricPoint {
                epoch,
                stage,
                doc: doc.to_vec(),
            }))
    }

    /// The entry of `run` holding `epoch`: the last entry whose first epoch is not above it
    /// (entries never overlap), when its range reaches `epoch`.
    pub(super) fn metric_entry(
        &self,
        op: &'static str,
        tree: &Tree,
        run: RunId,
        epoch: u32,
    ) -> Result<Option<(IVec, IVec)>> {
        let (from, to) = (keys::run_epoch(run, 0), keys::epoch_span(run, epoch));
        let found = tree.range(&from[..]..=&to[..]).next_back();
        let Some(entry) = found else {
            return Ok(None);
        };
        let (key, value) = entry.map_err(self.err(op))?;
        let (_, last) =
            spans::epoch_range(&key, &value).map_err(corrupt_entry(op, "metrics", &key))?;
        Ok((last >= epoch).then_some((key, value)))
    }

    /// The ranges of stored epochs of `run` that meet `lo..=hi`, highest first (disjoint): one step back
    /// from `hi` when every epoch is new (a report goes on from its run's last epoch).
    pub(super) fn stored_epochs(
        &self,
        op: &'static str,
        tree: &Tree,
        run: RunId,
        lo: u32,
        hi: u32,
    ) -> Result<Vec<(u32, u32)>> {
        let mut out = Vec::new();
        let (from, to) = (keys::run_epoch(run, 0), keys::epoch_span(run, hi));
        let entries = tree.range(&from[..]..=&to[..]).rev();
        for entry in entries {
            let (key, value) = entry.map_err(self.err(op))?;
            let (first, last) =
                spans::epoch_range(&key, &value).map_err(corrupt_entry(op, "metrics", &key))?;
            if last < lo {
                break;
            }
            out.push((first, last));
        }
        Ok(out)
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
            epoch,
            stage,
            doc: doc.as_bytes().to_vec(),
            event: encode(op, || format!("event of run {run}"), &event.bounded())?,
        })
    }
}
