//! `[slurm]` in `caudad.toml`: where and how the Slurm executor submits attempts (partition,
//! account, QOS, time limit, extra `sbatch` flags), the address workers on compute nodes dial,
//! and how often it polls. Validated at load so a bad value names its key, not a failed job.

use std::path::PathBuf;

use serde::Deserialize;

/// The Slurm executor's settings (every key optional; see examples/caudad.toml).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmConfig {
    /// `--partition`; absent: the cluster's default partition.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--qos`.
    pub qos: Option<String>,
    /// `--time`, in Slurm's formats (`MM`, `HH:MM:SS`, `D-HH:MM`, ...).
    pub time_limit: Option<String>,
    /// `--cpus-per-task` of every job.
    pub cpus_per_task: u32,
    /// `--mem` of every job, in MiB; absent: the partition's default.
    pub mem_mb: Option<u64>,
    /// More `sbatch` flags, each one argument (e.g. `"--constraint=a100"`).
    pub extra_sbatch_args: Vec<String>,
    /// The daemon's address as workers on compute nodes dial it (`http://login1:50051`);
    /// absent: the listen address (fine on a single machine only).
    pub worker_daemon_url: Option<String>,
    /// Shards per GPU as the cluster's gres.conf defines them: a run asking a GPU share `s`
    /// gets `--gres=shard:ceil(s * shards_per_gpu)`; absent: a share asks a whole GPU.
    pub shards_per_gpu: Option<u32>,
    /// Milliseconds between two `squeue` polls.
    pub poll_interval_ms: u64,
    /// The `caudad` binary on the compute nodes; absent: this daemon's own path.
    pub caudad_path: Option<PathBuf>,
    /// Where jobs write their output (`<prefix>-<run>-<attempt>.log`); must be writable from
    /// the compute nodes (a shared file system); absent: `<data_dir>/slurm-logs`.
    pub log_dir: Option<PathBuf>,
    /// Job names are `<prefix>-<run>-<attempt>`; daemons sharing a Slurm user need distinct
    /// prefixes.
    pub job_name_prefix: String,
    /// How long a worker keeps retrying an unreachable daemon (a daemon restart) before it
    /// gives up, in seconds.
    pub worker_patience_secs: u64,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        Self {
            partition: None,
            account: None,
            qos: None,
            time_limit: None,
            cpus_per_task: 1,
            mem_mb: None,
            extra_sbatch_args: Vec::new(),
            worker_daemon_url: None,
            shards_per_gpu: None,
            poll_interval_ms: 1000,
            caudad_path: None,
            log_dir: None,
            job_name_prefix: "cauda".into(),
            worker_patience_secs: 300,
        }
    }
}

/// Most extra `sbatch` arguments.
const MAX_EXTRA_ARGS: usize = 32;

/// Flags cauda sets itself; an extra argument may not override them.
const RESERVED_FLAGS: &[&str] = &[
    "--job-name",
    "-J",
    "--parsable",
    "--output",
    "-o",
    "--error",
    "-e",
    "--export",
    "--wrap",
    "--array",
    "-a",
];

impl SlurmConfig {
    /// Checks every key; the error names it (`slurm.KEY: ...`).
    pub fn validate(&self) -> Result<(), String> {
        for (key, value) in [
            ("partition", &self.partition),
            ("account", &self.account),
            ("qos", &self.qos),
        ] {
            if let Some(v) = value
                && !is_name(v)
            {
                return Err(format!(
                    "slurm.{key}: {v:?} is not a Slurm name (letters, digits, '_', '-', '.', ',')"
                ));
            }
        }
        if let Some(t) = &self.time_limit
            && (t.is_empty()
                || t.len() > 16
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b':' || b == b'-'))
        {
            return Err(format!(
                "slurm.time_limit: {t:?} is not a Slurm time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS)"
            ));
        }
        if self.cpus_per_task == 0 {
            return Err("slurm.cpus_per_task: must be at least 1".into());
        }
        if self.mem_mb == Some(0) {
            return Err("slurm.mem_mb: must be at least 1 (or absent)".into());
        }
        if self.shards_per_gpu == Some(0) {
            return Err("slurm.shards_per_gpu: must be at least 1 (or absent)".into());
        }
        if self.extra_sbatch_args.len() > MAX_EXTRA_ARGS {
            return Err(format!(
                "slurm.extra_sbatch_args: {} arguments; at most {MAX_EXTRA_ARGS}",
                self.extra_sbatch_args.len()
            ));
        }
        for (i, arg) in self.extra_sbatch_args.iter().enumerate() {
            if !arg.starts_with('-') || arg.contains('\n') {
                return Err(format!(
                    "slurm.extra_sbatch_args[{i}]: {arg:?} is not a flag (one `--name=value` per entry)"
                ));
            }
            let flag = arg.split('=').next().unwrap_or(arg);
            if RESERVED_FLAGS.contains(&flag) {
                return Err(format!(
                    "slurm.extra_sbatch_args[{i}]: {flag} is set by cauda itself"
                ));
            }
        }
        if let Some(url) = &self.worker_daemon_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "slurm.worker_daemon_url: {url:?} must start with http:// or https://"
            ));
        }
        if self.poll_interval_ms < 100 {
            return Err("slurm.poll_interval_ms: at least 100".into());
        }
        if self.job_name_prefix.is_empty()
            || self.job_name_prefix.len() > 32
            || !self
                .job_name_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!(
                "slurm.job_name_prefix: {:?} must be 1-32 letters, digits or '_'",
                self.job_name_prefix
            ));
        }
        if self.worker_patience_secs == 0 {
            return Err("slurm.worker_patience_secs: at least 1".into());
        }
        Ok(())
    }
}

fn is_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b','))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SlurmConfig, String> {
        let c: SlurmConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate().map(|()| c)
    }

    #[test]
    fn defaults_are_valid_and_keys_parse() {
        assert_eq!(parse("").unwrap(), SlurmConfig::default());
        let c = parse(
            "partition = \"gpu\"\naccount = \"lab\"\nqos = \"normal\"\ntime_limit = \"1-02:00:00\"\n\
             shards_per_gpu = 4\nextra_sbatch_args = [\"--constraint=a100\"]\n",
        )
        .unwrap();
        assert_eq!(c.partition.as_deref(), Some("gpu"));
        assert_eq!(c.shards_per_gpu, Some(4));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("partition = \"a b\"", "slurm.partition"),
            ("time_limit = \"1h\"", "slurm.time_limit"),
            ("cpus_per_task = 0", "slurm.cpus_per_task"),
            ("shards_per_gpu = 0", "slurm.shards_per_gpu"),
            (
                "extra_sbatch_args = [\"gpu\"]",
                "slurm.extra_sbatch_args[0]",
            ),
            (
                "extra_sbatch_args = [\"-J=x\"]",
                "slurm.extra_sbatch_args[0]",
            ),
            ("extra_sbatch_args = [\"--output=/x\"]", "set by cauda"),
            ("worker_daemon_url = \"login:1\"", "slurm.worker_daemon_url"),
            ("poll_interval_ms = 5", "slurm.poll_interval_ms"),
            ("job_name_prefix = \"a-b\"", "slurm.job_name_prefix"),
            ("partitio = \"x\"", "partitio"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
