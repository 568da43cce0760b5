//! The sled store's per-epoch metrics, keyed (run, epoch) so a scan returns them in epoch order;
//! each value is the stage byte then the JSON. An epoch is stored once: a resent one writes
//! nothing. `impl Store for SledStore` delegates here.

use super::keys;
use super::sled_store::SledStore;
use super::{MetricPoint, Result, RunId, StoreError, check_metric_json};

impl SledStore {
    pub(super) fn store_metric(
        &self,
        run: RunId,
        epoch: u32,
        stage: u8,
        json: &[u8],
    ) -> Result<bool> {
        const OP: &str = "append_metric";
        check_metric_json(json)?;
        self.run_exists(OP, run)?;
        let mut value = Vec::with_capacity(json.len() + 1);
        value.push(stage);
        value.extend_from_slice(json);
        let swapped = self
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
        for entry in self.metrics.scan_prefix(keys::id(run.0)) {
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
}
