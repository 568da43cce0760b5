//! The sled store's listings: experiments by id, and runs through the most selective index a
//! filter allows (experiment, state or user), each page re-checked against the filter since
//! reads take no lock. `impl Store for SledStore` delegates here.

use super::keys;
use super::sled_store::{SledStore, Trees, decode};
use super::{Result, RunFilter, StoreError};
use cauda_model::{ExperimentId, ExperimentRecord, RunId, RunRecord};

impl SledStore {
    pub(super) fn read_run(&self, op: &'static str, id: u64) -> Result<Option<RunRecord>> {
        let t = self.t()?;
        self.read_run_in(&t, op, id)
    }

    /// `read_run` with a database handle the caller already holds.
    fn read_run_in(&self, t: &Trees, op: &'static str, id: u64) -> Result<Option<RunRecord>> {
        let key = keys::id(id);
        match t.runs.get(key).map_err(self.err(op))? {
            Some(v) => decode(op, "runs", &key, &v).map(Some),
            None => Ok(None),
        }
    }

    pub(super) fn read_experiments(
        &self,
        after: Option<ExperimentId>,
        limit: Option<usize>,
    ) -> Result<Vec<ExperimentRecord>> {
        const OP: &str = "list_experiments";
        let Some(start) = after.map_or(Some(0), |a| a.0.checked_add(1)) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let t = self.t()?;
        for entry in t.experiments.range(keys::id(start)..) {
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            let (k, v) = entry.map_err(self.err(OP))?;
            out.push(decode(OP, "experiments", &k, &v)?);
        }
        Ok(out)
    }

    pub(super) fn read_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        const OP: &str = "list_runs";
        let Some(start) = filter.after.map_or(Some(0), |a| a.0.checked_add(1)) else {
            return Ok(Vec::new());
        };
        let (from, to) = (RunId(start), RunId(u64::MAX));
        let t = self.t()?;
        // The most selective index the filter allows; `None` walks the runs themselves.
        let (tree, iter) = if let Some(e) = filter.experiment {
            (
                "runs_by_experiment",
                t.by_experiment
                    .range(keys::pair(e.0, from.0)..=keys::pair(e.0, to.0)),
            )
        } else if let Some(s) = filter.state {
            (
                "runs_by_state",
                t.by_state
                    .range(keys::state_run(s, from)..=keys::state_run(s, to)),
            )
        } else if let Some(u) = &filter.user {
            (
                "runs_by_user",
                t.by_user
                    .range(keys::user_run(u, from)..=keys::user_run(u, to)),
            )
        } else {
            ("runs", t.runs.range(keys::id(start)..))
        };
        let mut out = Vec::new();
        for entry in iter {
            if filter.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            let (k, v) = entry.map_err(self.err(OP))?;
            let run: RunRecord = if tree == "runs" {
                decode(OP, tree, &k, &v)?
            } else {
                let id = keys::trailing_u64(&k).ok_or_else(|| StoreError::Corrupt {
                    op: OP,
                    key: keys::describe(tree, &k),
                    reason: "malformed index key".into(),
                })?;
                self.read_run_in(&t, OP, id)?
                    .ok_or_else(|| StoreError::Corrupt {
                        op: OP,
                        key: keys::describe(tree, &k),
                        reason: format!("index entry for run {id}, which is not stored"),
                    })?
            };
            // A concurrent put may have moved the run since the index was read.
            if filter.matches(&run) {
                out.push(run);
            }
        }
        Ok(out)
    }
}
