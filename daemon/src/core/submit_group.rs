//! Submissions applied in groups: every submission that arrives while another group is being
//! applied joins the next one, and a group takes the write lock once, plans each submission in
//! arrival order (a later one reuses an earlier one's identical runs), allocates their ids,
//! stores all of them in ONE transaction and runs one scheduling pass. 200 submissions at the
//! same instant used to hand the write lock on 200 times, each holder paying a sled transaction
//! of its own while the other submissions' threads competed for the same two cores.
//!
//! The queue the submissions wait in, and who leads a group, is `submit_queue`. Each submission
//! is judged alone (its quota, its reused runs); when the group's transaction fails, each
//! submission is committed alone so that each caller gets the error of a write of its own.
//! Nobody is answered before the flush covering the group returned: the outcome carries the
//! group's ticket, and each caller waits for it (`Daemon::settle`) after the lead has moved on.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use super::daemon::{Pending, state_event};
use super::plan::{PlanRef, PointInput, plan};
use super::submit_queue::Outcome;
use super::{CoreError, Daemon, Result, Submitted};
use crate::model::{
    ExperimentRecord, GpuMemoryNote, Millis, PointRecord, ResourceRequest, RunId, RunRecord,
    RunState,
};
use crate::store::WriteOp;

/// A submission resolved and hashed outside the write lock, waiting for its group.
pub(super) struct Prepared {
    pub(super) name: String,
    pub(super) points: Vec<PointInput>,
    pub(super) spec_text: String,
    pub(super) user: String,
    pub(super) priority: Option<i32>,
    pub(super) now: Millis,
}

/// One submission of a group after planning: its write and what it tells its caller.
struct Planned {
    queue_id: usize,
    /// Its ops in the group's write.
    ops: std::ops::Range<usize>,
    submitted: Submitted,
    /// Runs of earlier submissions of the group that it uses (reused or depended on).
    uses: HashSet<RunId>,
}

impl Daemon {
    /// Plans, stores and schedules a group under the write lock; one outcome per submission.
    pub(super) fn apply_group(&self, group: Vec<Prepared>) -> Vec<(usize, Outcome)> {
        let mut outcomes = Vec::with_capacity(group.len());
        let mut planned = Vec::with_capacity(group.len());
        // Runs this group creates: their names (for later submissions reusing them) and the
        // submission whose write stores them.
        let mut created: HashMap<RunId, (String, usize)> = HashMap::new();
        let mut queued_by: HashMap<String, usize> = HashMap::new();
        let mut all: Vec<WriteOp> = Vec::new();
        for (queue_id, prepared) in group.into_iter().enumerate() {
            let user = prepared.user.clone();
            match self.plan_one(prepared, &created, &queued_by) {
                Ok((ops, submitted, uses)) => {
                    for (id, name) in &submitted.runs {
                        created.insert(*id, (name.clone(), planned.len()));
                    }
                    *queued_by.entry(user).or_default() += submitted.runs.len();
                    let start = all.len();
                    all.extend(ops);
                    planned.push(Planned {
                        queue_id,
                        ops: start..all.len(),
                        submitted,
                        uses,
                    });
                }
                Err(e) => outcomes.push((queue_id, Err(e))),
            }
        }
        if planned.is_empty() {
            return outcomes;
        }
        let pendings = match self.commit_applied(&all) {
            Ok(pending) => {
                let groups: Vec<Vec<RunId>> = planned
                    .iter()
                    .map(|p| p.submitted.runs.iter().map(|(id, _)| *id).collect())
                    .collect();
                pending.split(&groups).into_iter().map(Ok).collect()
            }
            Err(_) if planned.len() > 1 => self.commit_alone(&planned, &all, &created),
            Err(e) => vec![Err(e)],
        };
        // `plan_one` entered the new runs in the reuse index; a refused write's must leave it.
        if pendings.iter().any(Result::is_err) {
            self.reset_reusable();
        }
        // A burst of submissions schedules once: while more wait for the next group, this one
        // leaves the pass to it (its runs are applied, so that pass sees them; `submit_queue::OwedPass` runs
        // it should that group fail first).
        let pass = if self.submissions.queued() == 0 {
            self.schedule_locked()
        } else {
            self.schedule_owed.store(true, Ordering::SeqCst);
            Ok(())
        };
        if let Err(e) = pass {
            tracing::error!(error = %e, "the scheduling pass after a group of submissions failed");
        }
        // Everything applied so far: the submissions and the pass's pending reasons.
        let newest = self.store.newest_ticket();
        for (p, pending) in planned.into_iter().zip(pendings) {
            outcomes.push((
                p.queue_id,
                pending.map(|mut pending| {
                    pending.ticket = pending.ticket.max(newest);
                    (p.submitted, pending)
                }),
            ));
        }
        outcomes
    }

    /// A group whose transaction failed, committed submission by submission: each caller gets
    /// the error of its own write, and a submission using runs of one that failed fails too.
    fn commit_alone(
        &self,
        planned: &[Planned],
        all: &[WriteOp],
        created: &HashMap<RunId, (String, usize)>,
    ) -> Vec<Result<Pending>> {
        let mut failed = HashSet::new();
        let mut out = Vec::with_capacity(planned.len());
        for (i, p) in planned.iter().enumerate() {
            let lost = p
                .uses
                .iter()
                .find(|id| created.get(id).is_some_and(|(_, by)| failed.contains(by)));
            let result = match lost {
                Some(id) => Err(CoreError::Internal(format!(
                    "run {id}, which this experiment shares with one submitted at the same \
                     instant, could not be stored; submit again"
                ))),
                None => self.commit_applied(&all[p.ops.clone()]),
            };
            if result.is_err() {
                failed.insert(i);
            }
            out.push(result);
        }
        out
    }

    /// Plans one submission of a group: its new runs (ids allocated here, in arrival order),
    /// the runs it reuses (stored, or created earlier in the group) and the write storing it.
    /// Its new runs enter the reuse index at once, so a later submission of the group reuses
    /// them as it would have had this one been committed first.
    fn plan_one(
        &self,
        prepared: Prepared,
        created: &HashMap<RunId, (String, usize)>,
        queued_by: &HashMap<String, usize>,
    ) -> Result<(Vec<WriteOp>, Submitted, HashSet<RunId>)> {
        let Prepared {
            name,
            points,
            spec_text,
            user,
            priority,
            now,
        } = prepared;
        let mut reusable = self
            .reusable
            .lock()
            .map_err(|_| CoreError::Internal("the reuse index lock was poisoned".into()))?;
        if reusable.is_none() {
            *reusable = Some(self.reusable_runs()?);
        }
        let index = reusable.get_or_insert_with(HashMap::new);
        let plan = plan(points, index, self.engine.registry());
        let already = queued_by.get(&user).copied().unwrap_or(0);
        self.check_queued_quota(&user, already, plan.new.len())?;
        // Taken without a flush of their own: durable with the group's commit.
        let experiment = self.store.next_experiment_id()?;
        let ids = self.store.next_run_ids(plan.new.len())?;
        let id_of = |r: PlanRef| match r {
            PlanRef::Stored(id) => id,
            PlanRef::New(i) => ids[i],
        };
        let mut ops = Vec::with_capacity(1 + 2 * plan.new.len());
        let mut runs = Vec::with_capacity(plan.new.len());
        let mut uses = HashSet::new();
        for (new, &id) in plan.new.iter().zip(&ids) {
            let resources = new.run.resources();
            let (request, source) = self.reservation(
                ResourceRequest {
                    gpus: u32::try_from(resources.gpus).unwrap_or(u32::MAX),
                    gpu_share: resources.gpu_share,
                    gpu_mem_mb: resources.gpu_mem_mb,
                },
                &new.config_hash,
            )?;
            let depends_on = new.depends_on.map(id_of);
            uses.extend(depends_on.filter(|d| created.contains_key(d)));
            let record = RunRecord {
                id,
                experiment,
                name: new.name.clone(),
                coordinates: new.coordinates.clone(),
                user: user.clone(),
                config_json: new.run.to_json(),
                facts: Some(new.run.facts(self.engine.registry())),
                config_hash: new.config_hash.clone(),
                engine: new.run.engine(),
                state: RunState::Queued,
                priority: priority.unwrap_or(resources.priority),
                submitted_at: now,
                started_at: None,
                finished_at: None,
                attempt: 0,
                max_retries: self.settings.max_retries,
                failures: 0,
                request,
                grants: Vec::new(),
                pending_reason: None,
                error: None,
                depends_on,
                summary: None,
                gpu_memory: Box::new(GpuMemoryNote {
                    source,
                    ..GpuMemoryNote::default()
                }),
                batch_job: None,
            };
            runs.push((id, record.name.clone()));
            ops.push(WriteOp::PutRun(record));
            ops.push(WriteOp::AppendEvent(
                id,
                state_event(now, None, RunState::Queued, None),
            ));
        }
        let mut reused = Vec::with_capacity(plan.reused.len());
        for &id in &plan.reused {
            let name = match created.get(&id) {
                Some((name, _)) => {
                    uses.insert(id);
                    name.clone()
                }
                // Its brief: the name without decoding the config, under the write lock.
                None => {
                    self.store
                        .get_run_brief(id)?
                        .ok_or(CoreError::RunNotFound(id))?
                        .name
                }
            };
            reused.push((id, name));
        }
        for (new, &id) in plan.new.iter().zip(&ids) {
            index.insert(new.config_hash.clone(), id);
        }
        let points = plan
            .points
            .iter()
            .map(|p| PointRecord {
                name: p.name.clone(),
                coordinates: p.coordinates.clone(),
                run: id_of(p.run),
                references: p.references.map(|(a, b)| (id_of(a), id_of(b))),
            })
            .collect();
        ops.insert(
            0,
            WriteOp::PutExperiment(ExperimentRecord {
                id: experiment,
                name,
                user,
                spec_text,
                submitted_at: now,
                runs: ids.iter().chain(&plan.reused).copied().collect(),
                points,
            }),
        );
        Ok((
            ops,
            Submitted {
                experiment,
                runs,
                reused,
            },
            uses,
        ))
    }
}
