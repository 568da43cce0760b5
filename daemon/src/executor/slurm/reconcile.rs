//! What one `squeue` snapshot means for the daemon's running attempts, as a pure function:
//! which attempts are alive (their job pends or just started), which jobs changed state, which
//! were requeued or preempted by Slurm (a new attempt, not a failure), which ended or vanished
//! without their worker finishing (the retry path), and which jobs are stale (cancel them).

use std::collections::{HashMap, HashSet};

use super::squeue::{Job, Phase};
use crate::model::{BatchJob, RunId, RunRecord};

/// A job of this daemon: its (run, attempt) from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurJob {
    pub run: RunId,
    pub attempt: u32,
    pub job: Job,
}

/// What the poller does about the snapshot (in this order per run; stale jobs last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The attempt is alive although its worker may not speak yet (pending, just started).
    Alive { run: RunId, attempt: u32 },
    /// Store the job's new state.
    Record { run: RunId, job: BatchJob },
    /// Slurm requeued or preempted the job: requeue the run (not a failure), cancel the job.
    Requeue {
        run: RunId,
        attempt: u32,
        job: u64,
        why: String,
    },
    /// The job ended or vanished while its attempt was running: the worker is lost.
    Ended {
        run: RunId,
        attempt: u32,
        job: u64,
        code: Option<i32>,
        signal: Option<i32>,
        why: String,
    },
    /// A queued or running job no current attempt owns: cancel it.
    Cancel { job: u64, why: String },
}

/// The actions for `running` (the daemon's running runs, read after the snapshot `jobs` was
/// taken) given the jobs already seen running by this poller.
pub fn reconcile(
    running: &[RunRecord],
    jobs: &[OurJob],
    seen_running: &HashSet<u64>,
) -> Vec<Action> {
    let mut by_key: HashMap<(RunId, u32), Vec<&OurJob>> = HashMap::new();
    for j in jobs {
        by_key.entry((j.run, j.attempt)).or_default().push(j);
    }
    let mut actions = Vec::new();
    let mut owned = HashSet::new();
    for run in running {
        let key = (run.id, run.attempt);
        let recorded = run.batch_job.as_ref().filter(|b| b.attempt == run.attempt);
        let mut mine: Vec<&OurJob> = by_key.get(&key).cloned().unwrap_or_default();
        mine.sort_by_key(|j| j.job.id);
        // The recorded job, else the first active one, else the latest.
        let chosen = recorded
            .and_then(|b| mine.iter().find(|j| j.job.id == b.id))
            .or_else(|| mine.iter().find(|j| j.job.active()))
            .or_else(|| mine.last())
            .copied();
        let Some(chosen) = chosen else {
            if let Some(b) = recorded {
                actions.push(Action::Ended {
                    run: run.id,
                    attempt: run.attempt,
                    job: b.id,
                    code: None,
                    signal: None,
                    why: format!("slurm job {} vanished from squeue", b.id),
                });
            }
            // Else its sbatch is still on its way.
            continue;
        };
        owned.insert(chosen.job.id);
        for dup in mine
            .iter()
            .filter(|j| j.job.id != chosen.job.id && j.job.active())
        {
            owned.insert(dup.job.id);
            actions.push(Action::Cancel {
                job: dup.job.id,
                why: format!("a duplicate of job {} for the same attempt", chosen.job.id),
            });
        }
        let job = &chosen.job;
        let phase = job.phase();
        if job.restarts > 0 && job.active() {
            actions.push(Action::Requeue {
                run: run.id,
                attempt: run.attempt,
                job: job.id,
                why: format!("slurm requeued job {}", job.id),
            });
            continue;
        }
        match phase {
            Phase::Waiting | Phase::Running => {
                if phase == Phase::Waiting || !seen_running.contains(&job.id) {
                    actions.push(Action::Alive {
                        run: run.id,
                        attempt: run.attempt,
                    });
                }
                let changed = recorded.is_none_or(|b| {
                    b.id != job.id || b.state != job.state || b.reason != job.reason
                });
                if changed {
                    actions.push(Action::Record {
                        run: run.id,
                        job: BatchJob {
                            id: job.id,
                            attempt: run.attempt,
                            state: job.state.clone(),
                            reason: job.reason.clone(),
                            token_sha256: None,
                        },
                    });
                }
            }
            Phase::Preempted => actions.push(Action::Requeue {
                run: run.id,
                attempt: run.attempt,
                job: job.id,
                why: format!("slurm preempted job {}", job.id),
            }),
            Phase::Ended => {
                let (code, signal) = job.exit();
                actions.push(Action::Ended {
                    run: run.id,
                    attempt: run.attempt,
                    job: job.id,
                    code,
                    signal,
                    why: format!("slurm job {} ended {}", job.id, job.describe()),
                });
            }
        }
    }
    for j in jobs {
        if j.job.active() && !owned.contains(&j.job.id) {
            actions.push(Action::Cancel {
                job: j.job.id,
                why: format!(
                    "job {} is for attempt {} of {}, which is not running",
                    j.job.id, j.attempt, j.run
                ),
            });
        }
    }
    actions
}

#[cfg(test)]
#[path = "reconcile_test.rs"]
mod tests;
