use super::*;
use crate::model::{ExperimentId, ResourceRequest, RunState};

fn run(id: u64, attempt: u32, recorded: Option<(u64, &str)>) -> RunRecord {
    RunRecord {
        id: RunId(id),
        experiment: ExperimentId(1),
        name: format!("r{id}"),
        user: "u".into(),
        config_json: "{}".into(),
        config_hash: "h".into(),
        engine: String::new(),
        state: RunState::Running,
        priority: 0,
        submitted_at: 0,
        started_at: None,
        finished_at: None,
        attempt,
        max_retries: 0,
        failures: 0,
        request: ResourceRequest::default(),
        grants: Vec::new(),
        pending_reason: None,
        error: None,
        depends_on: None,
        summary: None,
        coordinates: Vec::new(),
        batch_job: recorded.map(|(id, state)| {
            Box::new(BatchJob {
                id,
                attempt,
                state: state.into(),
                reason: None,
                token_sha256: None,
            })
        }),
        facts: None,
        gpu_memory: Default::default(),
    }
}

fn job(id: u64, run: u64, attempt: u32, state: &str, restarts: u32, exit: i64) -> OurJob {
    OurJob {
        run: RunId(run),
        attempt,
        job: Job {
            id,
            name: format!("cauda-{run}-{attempt}"),
            state: state.into(),
            reason: (state == "PENDING").then(|| "Resources".to_string()),
            restarts,
            exit_status: exit,
        },
    }
}

#[test]
fn pending_jobs_are_alive_and_their_state_is_recorded_once() {
    let runs = [run(1, 1, None)];
    let jobs = [job(10, 1, 1, "PENDING", 0, 0)];
    let actions = reconcile(&runs, &jobs, &HashSet::new());
    assert_eq!(actions.len(), 2);
    assert_eq!(
        actions[0],
        Action::Alive {
            run: RunId(1),
            attempt: 1
        }
    );
    let Action::Record { job, .. } = &actions[1] else {
        panic!("{actions:?}")
    };
    assert_eq!(
        (job.id, job.state.as_str(), job.reason.as_deref()),
        (10, "PENDING", Some("Resources"))
    );
    // Recorded already: only alive.
    let mut runs = [run(1, 1, Some((10, "PENDING")))];
    runs[0].batch_job.as_mut().unwrap().reason = Some("Resources".into());
    assert_eq!(
        reconcile(&runs, &jobs, &HashSet::new()),
        vec![Action::Alive {
            run: RunId(1),
            attempt: 1
        }]
    );
}

#[test]
fn a_running_job_is_alive_only_when_first_seen_running() {
    let runs = [run(1, 1, Some((10, "RUNNING")))];
    let jobs = [job(10, 1, 1, "RUNNING", 0, 0)];
    assert_eq!(
        reconcile(&runs, &jobs, &HashSet::new()),
        vec![Action::Alive {
            run: RunId(1),
            attempt: 1
        }]
    );
    assert!(
        reconcile(&runs, &jobs, &HashSet::from([10])).is_empty(),
        "heartbeats take over"
    );
}

#[test]
fn requeued_or_preempted_jobs_requeue_the_run() {
    let runs = [
        run(1, 1, Some((10, "RUNNING"))),
        run(2, 1, Some((11, "RUNNING"))),
    ];
    let jobs = [
        job(10, 1, 1, "PENDING", 1, 0),
        job(11, 2, 1, "PREEMPTED", 0, 0),
    ];
    let actions = reconcile(&runs, &jobs, &HashSet::from([10, 11]));
    assert!(
        matches!(&actions[0], Action::Requeue { run: RunId(1), job: 10, why, .. } if why.contains("requeued"))
    );
    assert!(
        matches!(&actions[1], Action::Requeue { run: RunId(2), job: 11, why, .. } if why.contains("preempted"))
    );
    assert_eq!(actions.len(), 2);
}

#[test]
fn ended_or_vanished_jobs_of_a_running_attempt_are_lost_workers() {
    let runs = [
        run(1, 1, Some((10, "RUNNING"))),
        run(2, 1, Some((11, "RUNNING"))),
        run(3, 1, None),
    ];
    let jobs = [job(10, 1, 1, "FAILED", 0, 768)];
    let actions = reconcile(&runs, &jobs, &HashSet::new());
    assert_eq!(actions.len(), 2, "r-3's sbatch is on its way: nothing yet");
    assert!(
        matches!(&actions[0], Action::Ended { run: RunId(1), code: Some(3), signal: None, why, .. } if why.contains("FAILED"))
    );
    assert!(
        matches!(&actions[1], Action::Ended { run: RunId(2), job: 11, code: None, why, .. } if why.contains("vanished"))
    );
}

#[test]
fn stale_and_duplicate_jobs_are_cancelled_finished_ones_ignored() {
    // r-1 is at attempt 2: its attempt-1 job is stale; r-5 is not running at all; job 13
    // duplicates r-1's attempt 2.
    let runs = [run(1, 2, Some((12, "RUNNING")))];
    let jobs = [
        job(10, 1, 1, "PENDING", 0, 0),
        job(12, 1, 2, "RUNNING", 0, 0),
        job(13, 1, 2, "PENDING", 0, 0),
        job(14, 5, 1, "RUNNING", 0, 0),
        job(15, 5, 2, "COMPLETED", 0, 0),
    ];
    let actions = reconcile(&runs, &jobs, &HashSet::from([12]));
    let cancelled: Vec<u64> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Cancel { job, .. } => Some(*job),
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, vec![13, 10, 14]);
    assert_eq!(actions.len(), 3);
}
