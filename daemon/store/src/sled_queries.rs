//! The sled store's listings: experiments by id, and runs through the most selective index a
//! filter allows (experiment, state or user), each page re-checked against the filter since
//! reads take no lock; listings can read the runs' briefs instead of the records (`brief`).
//! `impl Store for SledStore` delegates here.

use super::keys;
use super::sled_store::{SledStore, Trees, decode};
use super::{Result, RunBrief, RunFilter, StoreError};
use cauda_model::{ExperimentId, ExperimentRecord, RunId, RunRecord};
use serde::de::DeserializeOwned;

/// The most items a listing reserves room for before reading (a page of `cauda ls` is 1,000).
const MAX_RESERVED: usize = 4096;

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
        self.walk_runs(
            "list_runs",
            filter,
            "runs",
            |t| &t.runs,
            |run: &RunRecord| filter.matches(run),
        )
    }

    /// `read_runs` from the briefs tree: the same walk, without decoding configs.
    pub(super) fn read_run_briefs(&self, filter: &RunFilter) -> Result<Vec<RunBrief>> {
        self.walk_runs(
            "list_run_briefs",
            filter,
            "run_briefs",
            |t| &t.briefs,
            |b: &RunBrief| filter.matches_fields(b.id, b.experiment, b.state, &b.user),
        )
    }

    /// The runs passing `filter`, in id order, read from `values` (the records or their
    /// briefs, both keyed by run id) through the most selective index the filter allows.
    fn walk_runs<T: DeserializeOwned>(
        &self,
        op: &'static str,
        filter: &RunFilter,
        name: &'static str,
        values: impl Fn(&Trees) -> &sled::Tree,
        matches: impl Fn(&T) -> bool,
    ) -> Result<Vec<T>> {
        let Some(start) = filter.after.map_or(Some(0), |a| a.0.checked_add(1)) else {
            return Ok(Vec::new());
        };
        let (from, to) = (RunId(start), RunId(u64::MAX));
        let t = self.t()?;
        // The most selective index the filter allows; `None` walks the values themselves.
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
            (name, values(&t).range(keys::id(start)..))
        };
        // A page's worth up front: growing a vector of briefs one doubling at a time moved
        // every brief again and again (an eighth of a 10,000-run `ls` walk).
        let mut out = Vec::with_capacity(filter.limit.unwrap_or(0).min(MAX_RESERVED));
        for entry in iter {
            if filter.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            let (k, v) = entry.map_err(self.err(op))?;
            let item: T = if tree == name {
                decode(op, tree, &k, &v)?
            } else {
                let id = keys::trailing_u64(&k).ok_or_else(|| StoreError::Corrupt {
                    op,
                    key: keys::describe(tree, &k),
                    reason: "malformed index key".into(),
                })?;
                let key = keys::id(id);
                let found = values(&t).get(key).map_err(self.err(op))?;
                let bytes = found.ok_or_else(|| StoreError::Corrupt {
                    op,
                    key: keys::describe(tree, &k),
                    reason: format!("index entry for run {id}, which is not stored in {name}"),
                })?;
                decode(op, name, &key, &bytes)?
            };
            // A concurrent put may have moved the run since the index was read.
            if matches(&item) {
                out.push(item);
            }
        }
        Ok(out)
    }
}
