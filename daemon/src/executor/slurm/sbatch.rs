//! What one attempt's `sbatch` looks like, as pure functions: the job name that makes launches
//! idempotent (`<prefix>-<run>-<attempt>`), the flags (resources, partition, requeue, output)
//! and the batch script that runs `caudad work`. No I/O here, so all of it is unit-tested.

use std::path::Path;

use super::config::SlurmConfig;
use crate::model::{ResourceRequest, RunId, RunRecord};

/// `<prefix>-<run>-<attempt>`, e.g. `cauda-12-1`.
pub fn job_name(prefix: &str, run: RunId, attempt: u32) -> String {
    format!("{prefix}-{}-{attempt}", run.0)
}

/// The (run, attempt) of a job named by `job_name` with this prefix; `None` for other jobs.
pub fn parse_job_name(prefix: &str, name: &str) -> Option<(RunId, u32)> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let (run, attempt) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(run) || !digits(attempt) {
        return None;
    }
    Some((RunId(run.parse().ok()?), attempt.parse().ok()?))
}

/// The `--gres` value of a request: `gpu:N` for whole GPUs, `shard:K` for a share when the
/// cluster has shards (else a whole GPU), nothing for a CPU run.
pub fn gres(request: &ResourceRequest, shards_per_gpu: Option<u32>) -> Option<String> {
    if request.gpus > 0 {
        return Some(format!("gpu:{}", request.gpus));
    }
    let share = request.gpu_share?;
    Some(match shards_per_gpu {
        Some(per) => {
            let k = (share * f64::from(per)).ceil().clamp(1.0, f64::from(per));
            // In range 1..=per by the clamp.
            format!("shard:{}", k as u32)
        }
        None => "gpu:1".to_string(),
    })
}

/// The `sbatch` arguments of an attempt (the script comes on stdin).
pub fn sbatch_args(config: &SlurmConfig, run: &RunRecord, log: &Path) -> Vec<String> {
    let mut args = vec![
        "--parsable".to_string(),
        format!(
            "--job-name={}",
            job_name(&config.job_name_prefix, run.id, run.attempt)
        ),
        "--requeue".to_string(),
        "--nodes=1".to_string(),
        "--ntasks=1".to_string(),
        format!("--cpus-per-task={}", config.cpus_per_task),
        format!("--output={}", log.display()),
        "--open-mode=append".to_string(),
        // The submitting environment goes with the job: the worker token is in it, never on
        // a command line.
        "--export=ALL".to_string(),
    ];
    if let Some(g) = gres(&run.request, config.shards_per_gpu) {
        args.push(format!("--gres={g}"));
    }
    if let Some(mb) = config.mem_mb {
        args.push(format!("--mem={mb}M"));
    }
    for (flag, value) in [
        ("--partition", &config.partition),
        ("--account", &config.account),
        ("--qos", &config.qos),
        ("--time", &config.time_limit),
    ] {
        if let Some(v) = value {
            args.push(format!("{flag}={v}"));
        }
    }
    args.extend(config.extra_sbatch_args.iter().cloned());
    args
}

/// The batch script: stamps the job's start (with its `CUDA_VISIBLE_DEVICES`) and end in the
/// log, and runs the attempt's worker.
pub fn batch_script(
    caudad: &Path,
    daemon_url: &str,
    run: RunId,
    attempt: u32,
    patience_secs: u64,
) -> String {
    format!(
        "#!/bin/sh\n\
         echo \"cauda: job $SLURM_JOB_ID on $(hostname) start_ms=$(date +%s%3N) CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES-}}\"\n\
         export CUDA_DEVICE_ORDER=PCI_BUS_ID CAUDA_RUN_ID=r-{run} CAUDA_ATTEMPT={attempt}\n\
         export RAYON_NUM_THREADS=\"${{RAYON_NUM_THREADS:-${{SLURM_CPUS_PER_TASK:-1}}}}\"\n\
         {} work --daemon {} --run {run} --attempt {attempt} --patience-secs {patience_secs}\n\
         rc=$?\n\
         echo \"cauda: job $SLURM_JOB_ID end_ms=$(date +%s%3N) exit=$rc\"\n\
         exit $rc\n",
        shell_quote(&caudad.to_string_lossy()),
        shell_quote(daemon_url),
        run = run.0,
    )
}

/// `sbatch --parsable` prints `ID` or `ID;CLUSTER`.
pub fn parse_submitted(stdout: &str) -> Result<u64, String> {
    let first = stdout.trim().lines().next().unwrap_or("");
    let id = first.split(';').next().unwrap_or("").trim();
    id.parse()
        .map_err(|_| format!("sbatch printed {:?}, not a job id", truncate(stdout, 200)))
}

/// Single-quotes `s` for sh.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ExperimentId, RunState};

    fn run(request: ResourceRequest) -> RunRecord {
        RunRecord {
            id: RunId(7),
            experiment: ExperimentId(1),
            name: "x".into(),
            user: "u".into(),
            config_json: "{}".into(),
            config_hash: "h".into(),
            engine: String::new(),
            state: RunState::Running,
            priority: 0,
            submitted_at: 0,
            started_at: None,
            finished_at: None,
            attempt: 2,
            max_retries: 0,
            failures: 0,
            request,
            grants: Vec::new(),
            pending_reason: None,
            error: None,
            depends_on: None,
            summary: None,
            coordinates: Vec::new(),
            batch_job: None,
            facts: None,
            gpu_memory: Default::default(),
        }
    }

    #[test]
    fn job_names_round_trip_and_foreign_jobs_are_ignored() {
        assert_eq!(job_name("cauda", RunId(12), 3), "cauda-12-3");
        assert_eq!(parse_job_name("cauda", "cauda-12-3"), Some((RunId(12), 3)));
        for other in [
            "cauda-12",
            "cauda-x-1",
            "caudax-1-1",
            "other-1-1",
            "cauda-1-2-3",
            "cauda--1",
        ] {
            assert_eq!(parse_job_name("cauda", other), None, "{other}");
        }
    }

    #[test]
    fn gres_follows_the_request() {
        let gpus = |n| ResourceRequest {
            gpus: n,
            ..ResourceRequest::default()
        };
        let share = |s| ResourceRequest {
            gpu_share: Some(s),
            ..ResourceRequest::default()
        };
        assert_eq!(gres(&gpus(2), Some(4)).as_deref(), Some("gpu:2"));
        assert_eq!(gres(&share(0.5), Some(4)).as_deref(), Some("shard:2"));
        assert_eq!(gres(&share(0.3), Some(4)).as_deref(), Some("shard:2"));
        assert_eq!(gres(&share(0.01), Some(4)).as_deref(), Some("shard:1"));
        assert_eq!(gres(&share(0.5), None).as_deref(), Some("gpu:1"));
        assert_eq!(gres(&gpus(0), Some(4)), None);
    }

    #[test]
    fn sbatch_args_carry_every_configured_flag() {
        let config = SlurmConfig {
            partition: Some("gpu".into()),
            account: Some("lab".into()),
            qos: Some("high".into()),
            time_limit: Some("1:00:00".into()),
            mem_mb: Some(4096),
            cpus_per_task: 4,
            extra_sbatch_args: vec!["--constraint=a100".into()],
            ..SlurmConfig::default()
        };
        let r = run(ResourceRequest {
            gpus: 1,
            ..ResourceRequest::default()
        });
        let args = sbatch_args(&config, &r, Path::new("/logs/cauda-7-2.log"));
        for want in [
            "--parsable",
            "--job-name=cauda-7-2",
            "--requeue",
            "--cpus-per-task=4",
            "--output=/logs/cauda-7-2.log",
            "--gres=gpu:1",
            "--mem=4096M",
            "--partition=gpu",
            "--account=lab",
            "--qos=high",
            "--time=1:00:00",
            "--constraint=a100",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
        }
        let cpu = sbatch_args(
            &SlurmConfig::default(),
            &run(ResourceRequest::default()),
            Path::new("l"),
        );
        assert!(
            !cpu.iter()
                .any(|a| a.starts_with("--gres") || a.starts_with("--mem="))
        );
    }

    #[test]
    fn the_script_runs_the_attempt_with_quoted_paths() {
        let s = batch_script(
            Path::new("/opt/it's/caudad"),
            "http://h:1",
            RunId(7),
            2,
            300,
        );
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(
            "'/opt/it'\\''s/caudad' work --daemon 'http://h:1' --run 7 --attempt 2 --patience-secs 300\n"
        ), "{s}");
        assert!(s.contains("exit $rc"));
    }

    #[test]
    fn submitted_ids_parse() {
        assert_eq!(parse_submitted("42\n"), Ok(42));
        assert_eq!(parse_submitted("42;lab\n"), Ok(42));
        assert!(
            parse_submitted("sbatch: error")
                .unwrap_err()
                .contains("not a job id")
        );
    }
}
