//! The sled store's atomic writes that append events: `commit` (a batch of experiment, run and
//! event writes in one multi-tree transaction). A run's next event number is read from the
//! events tree under the writer lock, so numbers stay contiguous across concurrent writers.
//! The lock is released once the transaction is applied; the flush that makes it durable is
//! shared with every other writer waiting at the time (`Store::wait_durable`).
//! `impl Store for SledStore` delegates here.

use super::keys;
use super::sled_store::{SledStore, decode, encode, encode_compact};
use super::{Result, RunBrief, StoreError, Ticket, WriteOp};
use cauda_model::{RunId, RunRecord};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use std::collections::HashMap;

/// The trees a run's put writes: the record, its brief and its three indexes.
type RunTrees<'a> = (
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
);

/// What a stored run's index entries are made of. Read from the stored record without
/// decoding the rest of it (its config JSON is several KB of escaped text): the scheduling pass
/// rewrites every run whose pending reason changed, and decoding whole records to drop their
/// index entries was a third of that pass under the daemon's write lock.
#[derive(serde::Deserialize)]
struct Indexed {
    experiment: cauda_model::ExperimentId,
    state: cauda_model::RunState,
    user: String,
}

/// Stage a run's put in a commit: drop its old index entries, write the new ones, the record
/// and its brief.
fn stage_put_run(
    (runs, briefs, by_exp, by_state, by_user): RunTrees<'_>,
    run: &RunRecord,
    (bytes, brief): (&[u8], &[u8]),
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    const OP: &str = "commit";
    let key = keys::id(run.id.0);
    if let Some(old) = runs.get(key)? {
        let old: Indexed =
            decode(OP, "runs", &key, &old).map_err(ConflictableTransactionError::Abort)?;
        by_exp.remove(&keys::pair(old.experiment.0, run.id.0))?;
        by_state.remove(&keys::state_run(old.state, run.id))?;
        by_user.remove(keys::user_run(&old.user, run.id))?;
    }
    by_exp.insert(&keys::pair(run.experiment.0, run.id.0), &[])?;
    by_state.insert(&keys::state_run(run.state, run.id), &[])?;
    by_user.insert(keys::user_run(&run.user, run.id), &[])?;
    runs.insert(&key, bytes)?;
    briefs.insert(&key, brief)?;
    Ok(())
}

/// A commit's op with its value encoded (and its event's sequence number) before the transaction.
enum Staged<'a> {
    Experiment(u64, Vec<u8>),
    /// The record and its brief.
    Run(&'a RunRecord, Vec<u8>, Vec<u8>),
    Event(RunId, u64, Vec<u8>),
}

impl SledStore {
    /// Applies `ops` in one transaction under the writer lock; returns the appended events'
    /// sequence numbers and the ticket to wait for.
    pub(super) fn commit_ops(&self, ops: &[WriteOp]) -> Result<(Vec<u64>, Ticket)> {
        const OP: &str = "commit";
        let w = self.write_lock();
        // A batch that creates an experiment is a submission: new work, refused below the
        // reserve so that running work can still record its end.
        let submission = ops.iter().any(|op| matches!(op, WriteOp::PutExperiment(_)));
        self.writable(OP, submission.then_some((0, "a new submission")))?;
        let mut seqs: HashMap<RunId, u64> = HashMap::new();
        let mut staged = Vec::with_capacity(ops.len());
        for op in ops {
            staged.push(match op {
                WriteOp::PutExperiment(e) => {
                    Staged::Experiment(e.id.0, encode(OP, || format!("experiment {}", e.id), e)?)
                }
                WriteOp::PutRun(r) => Staged::Run(
                    r,
                    encode(OP, || format!("run {}", r.id), r)?,
                    encode_compact(OP, || format!("brief of run {}", r.id), &RunBrief::of(r))?,
                ),
                WriteOp::AppendEvent(run, event) => {
                    let seq = match seqs.get(run) {
                        Some(s) => *s,
                        None => self.next_event_seq(OP, *run)?,
                    };
                    seqs.insert(*run, seq + 1);
                    Staged::Event(
                        *run,
                        seq,
                        encode(OP, || format!("event of run {run}"), &event.bounded())?,
                    )
                }
            });
        }
        let t = self.t()?;
        let trees = (
            &t.experiments,
            &t.runs,
            &t.briefs,
            &t.by_experiment,
            &t.by_state,
            &t.by_user,
            &t.events,
        );
        let appended = trees
            .transaction(
                |(experiments, runs, briefs, by_exp, by_state, by_user, events)| {
                    let mut appended = Vec::new();
                    for op in &staged {
                        match op {
                            Staged::Experiment(id, bytes) => {
                                experiments.insert(&keys::id(*id), bytes.as_slice())?;
                            }
                            Staged::Run(run, bytes, brief) => stage_put_run(
                                (runs, briefs, by_exp, by_state, by_user),
                                run,
                                (bytes, brief),
                            )?,
                            Staged::Event(run, seq, bytes) => {
                                // Sees the runs put earlier in this same transaction.
                                if runs.get(keys::id(run.0))?.is_none() {
                                    return Err(ConflictableTransactionError::Abort(
                                        StoreError::NotFound {
                                            op: OP,
                                            what: format!("run {run}"),
                                        },
                                    ));
                                }
                                events.insert(&keys::pair(run.0, *seq), bytes.as_slice())?;
                                appended.push(*seq);
                            }
                        }
                    }
                    Ok(appended)
                },
            )
            .map_err(self.tx_err(OP))?;
        drop(t);
        let ticket = self.applied();
        drop(w);
        Ok((appended, ticket))
    }
}
