//! Reading `squeue --json`: one batched query answers for every job of the daemon's Slurm user
//! (Slurm 22.05 ignores squeue's filters with `--json`, so jobs are picked by name here). Pure
//! parsing of the fields the executor needs, tested against captured output of a real cluster;
//! tolerant of the later shapes (23.02+: `job_state` a list, `exit_code` an object).

use serde::Deserialize;
use serde_json::Value;

/// Where a job is, as the executor distinguishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting to start (PENDING, REQUEUED, CONFIGURING, SUSPENDED, ...).
    Waiting,
    /// Its batch script runs (RUNNING, COMPLETING).
    Running,
    /// Over (COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, ...).
    Ended,
    /// Over because it was preempted (and not requeued).
    Preempted,
}

/// One job as squeue reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    pub name: String,
    /// Slurm's state word, e.g. `PENDING`.
    pub state: String,
    /// Slurm's reason (`None` when it gives none), e.g. `Resources`.
    pub reason: Option<String>,
    /// How often Slurm requeued it (0 for a job that never was).
    pub restarts: u32,
    /// The raw wait status of its batch script (768 = exit 3; 15 = signal 15).
    pub exit_status: i64,
}

impl Job {
    pub fn phase(&self) -> Phase {
        match self.state.as_str() {
            "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" => Phase::Running,
            "PREEMPTED" => Phase::Preempted,
            "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "NODE_FAIL" | "OUT_OF_MEMORY"
            | "BOOT_FAIL" | "DEADLINE" | "SPECIAL_EXIT" | "REVOKED" => Phase::Ended,
            _ => Phase::Waiting,
        }
    }

    /// Still queued or running (not over).
    pub fn active(&self) -> bool {
        matches!(self.phase(), Phase::Waiting | Phase::Running)
    }

    /// (exit code, signal) of the batch script, from its raw wait status.
    pub fn exit(&self) -> (Option<i32>, Option<i32>) {
        let raw = i32::try_from(self.exit_status).unwrap_or(0);
        let signal = raw & 0x7f;
        if signal == 0 {
            (Some((raw >> 8) & 0xff), None)
        } else {
            (None, Some(signal))
        }
    }

    /// `PENDING (Resources)`, `RUNNING`.
    pub fn describe(&self) -> String {
        match &self.reason {
            Some(r) => format!("{} ({r})", self.state),
            None => self.state.clone(),
        }
    }
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    jobs: Vec<RawJob>,
    #[serde(default)]
    errors: Vec<Value>,
}

#[derive(Deserialize)]
struct RawJob {
    job_id: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    job_state: Value,
    #[serde(default)]
    state_reason: Option<String>,
    #[serde(default)]
    restart_cnt: Option<u32>,
    #[serde(default)]
    exit_code: Value,
}

/// Parses `squeue --json` output.
pub fn parse(json: &str) -> Result<Vec<Job>, String> {
    let out: Output =
        serde_json::from_str(json).map_err(|e| format!("squeue --json output: {e}"))?;
    if out.jobs.is_empty()
        && let Some(first) = out.errors.first()
    {
        return Err(format!("squeue reported an error: {first}"));
    }
    Ok(out
        .jobs
        .into_iter()
        .map(|j| Job {
            id: j.job_id,
            name: j.name,
            state: state_word(&j.job_state),
            reason: j.state_reason.filter(|r| !r.is_empty() && r != "None"),
            restarts: j.restart_cnt.unwrap_or(0),
            exit_status: exit_status(&j.exit_code),
        })
        .collect())
}

/// 22.05: `"PENDING"`; 23.02+: `["PENDING"]` (flags may follow the base state).
fn state_word(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .first()
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN")
            .to_string(),
        _ => "UNKNOWN".into(),
    }
}

/// 22.05: the raw wait status; 23.02+: `{return_code, signal: {id}}` (as a raw status here).
fn exit_status(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::Object(o) => {
            let num = |v: Option<&Value>| match v {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::Object(o)) => o.get("number").and_then(Value::as_i64),
                _ => None,
            };
            let signal = o.get("signal").and_then(|s| num(s.get("id"))).unwrap_or(0);
            if signal > 0 {
                signal & 0x7f
            } else {
                (num(o.get("return_code")).unwrap_or(0) & 0xff) << 8
            }
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<Job> {
        let path = format!("{}/tests/fixtures/slurm/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("fixture");
        parse(&text).expect("parses")
    }

    #[test]
    fn running_and_pending_jobs_of_a_real_cluster() {
        let jobs = fixture("squeue-running-pending.json");
        let brief: Vec<_> = jobs
            .iter()
            .map(|j| (j.id, j.name.as_str(), j.phase(), j.describe()))
            .collect();
        assert_eq!(
            brief,
            vec![
                (1, "cauda-1-1", Phase::Running, "RUNNING".to_string()),
                (2, "cauda-2-1", Phase::Running, "RUNNING".to_string()),
                (
                    3,
                    "cauda-3-1",
                    Phase::Waiting,
                    "PENDING (Resources)".to_string()
                ),
            ]
        );
        assert!(jobs.iter().all(|j| j.restarts == 0 && j.active()));
    }

    #[test]
    fn a_requeued_job_pends_again_with_a_restart_count() {
        let jobs = fixture("squeue-requeued.json");
        let j = jobs.iter().find(|j| j.id == 1).expect("job 1");
        assert_eq!((j.phase(), j.restarts), (Phase::Waiting, 1));
        assert_eq!(j.reason.as_deref(), Some("BeginTime"));
    }

    #[test]
    fn finished_jobs_carry_their_exit_status() {
        let jobs = fixture("squeue-finished.json");
        let by_id = |id| jobs.iter().find(|j| j.id == id).expect("job");
        assert_eq!(by_id(2).state, "CANCELLED");
        assert_eq!(by_id(2).phase(), Phase::Ended);
        assert_eq!(by_id(2).exit(), (None, Some(15)));
        assert_eq!(by_id(4).state, "FAILED");
        assert_eq!(by_id(4).exit(), (Some(3), None), "768 is exit 3");
        assert_eq!(by_id(3).phase(), Phase::Running);
    }

    #[test]
    fn later_shapes_and_errors() {
        let json = r#"{"jobs":[{"job_id":9,"name":"cauda-1-1","job_state":["PREEMPTED"],
            "exit_code":{"status":["SIGNALED"],"return_code":{"number":0},"signal":{"id":{"number":9}}}}],"errors":[]}"#;
        let jobs = parse(json).unwrap();
        assert_eq!(jobs[0].phase(), Phase::Preempted);
        assert_eq!(jobs[0].exit(), (None, Some(9)));
        let err = parse(r#"{"jobs":[],"errors":[{"error":"Unable to contact slurm controller"}]}"#)
            .unwrap_err();
        assert!(err.contains("Unable to contact"), "{err}");
        assert!(parse("not json").is_err());
        assert_eq!(parse(r#"{"jobs":[],"errors":[]}"#).unwrap(), vec![]);
    }
}
