//! The sled store's deletions: a run with everything stored under it (its record and index
//! entries, events, metrics, checkpoint metas and chunks) in one multi-tree transaction, so a
//! crash leaves either all of it or none; and an experiment's record. Every per-run tree is
//! keyed by the run id first, so a prefix scan (under the writer lock) finds the keys.
//! `impl Store for SledStore` delegates here.

use super::keys;
use super::sled_store::{SledStore, decode};
use super::{Result, StoreError};
use cauda_model::{ExperimentId, RunId, RunRecord};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

impl SledStore {
    pub(super) fn delete_run_all(&self, run: RunId) -> Result<bool> {
        const OP: &str = "delete_run";
        let w = self.write_lock();
        let t = self.t()?;
        let key = keys::id(run.0);
        let Some(bytes) = t.runs.get(key).map_err(self.err(OP))? else {
            return Ok(false);
        };
        let record: RunRecord = decode(OP, "runs", &key, &bytes)?;
        let under = |tree: &sled::Tree| -> Result<Vec<sled::IVec>> {
            tree.scan_prefix(key)
                .keys()
                .collect::<std::result::Result<_, _>>()
                .map_err(self.err(OP))
        };
        let (events, metrics) = (under(&t.events)?, under(&t.metrics)?);
        let (checkpoints, chunks) = (under(&t.checkpoints)?, under(&t.chunks)?);
        let trees = (
            &t.runs,
            &t.briefs,
            &t.by_experiment,
            &t.by_state,
            &t.by_user,
            &t.events,
            &t.metrics,
            &t.checkpoints,
            &t.chunks,
        );
        trees
            .transaction(
                |(runs, briefs, by_exp, by_state, by_user, ev, me, cp, ch)| {
                    runs.remove(&key)?;
                    briefs.remove(&key)?;
                    by_exp.remove(&keys::pair(record.experiment.0, run.0))?;
                    by_state.remove(&keys::state_run(record.state, run))?;
                    by_user.remove(keys::user_run(&record.user, run))?;
                    for (tree, keys) in [
                        (ev, &events),
                        (me, &metrics),
                        (cp, &checkpoints),
                        (ch, &chunks),
                    ] {
                        for k in keys {
                            tree.remove(k)?;
                        }
                    }
                    Ok::<_, ConflictableTransactionError<StoreError>>(())
                },
            )
            .map_err(self.tx_err(OP))?;
        drop((t, w));
        self.durable(OP)?;
        Ok(true)
    }

    pub(super) fn delete_experiment_record(&self, id: ExperimentId) -> Result<bool> {
        const OP: &str = "delete_experiment";
        let w = self.write_lock();
        let removed = self
            .t()?
            .experiments
            .remove(keys::id(id.0))
            .map_err(self.err(OP))?;
        drop(w);
        self.durable(OP)?;
        Ok(removed.is_some())
    }
}
