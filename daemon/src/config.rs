//! `caudad.toml`: where the daemon listens, where it keeps its data, which devices it may hand
//! out, how it schedules and who may call it (`[auth]`). Strict (`deny_unknown_fields`) so a misspelt key is an error naming
//! it; `examples/caudad.toml` documents every key and is parsed by a test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::gpu;
use crate::scheduler::{Inventory, InventoryError, SchedulerConfig};

/// Largest config file read, in bytes.
const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// Why a config could not be loaded; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Devices {
        path: PathBuf,
        #[source]
        source: InventoryError,
    },
}

/// The daemon's config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// The gRPC address.
    pub listen: SocketAddr,
    /// The sled database and run artifacts live here.
    pub data_dir: PathBuf,
    /// Inventory override (`"cpu:N"`, `"gpu:K"`, `"gpu:K@MiB"`); absent means one CPU slot
    /// per available core plus every GPU NVML discovers.
    pub devices: Option<Vec<String>>,
    /// Retries after a failed attempt, per run.
    pub max_retries: u32,
    /// Milliseconds between SIGTERM and SIGKILL when a running run is cancelled.
    pub kill_grace_ms: u64,
    /// A running attempt without a sign of life (heartbeat, report) for this long fails.
    pub heartbeat_timeout_ms: u64,
    /// How many of a run's latest checkpoints are kept (its best is kept besides).
    pub keep_checkpoints: usize,
    /// A folder watched for spec files to submit (moved to `submitted/` or `rejected/`).
    pub inbox: Option<PathBuf>,
    /// A folder of user presets (`*.toml`), reloaded when it changes.
    pub presets: Option<PathBuf>,
    pub scheduler: SchedulerConfig,
    /// Users and their bearer tokens; absent means no authentication (every caller is
    /// "anonymous"), which is only allowed on a loopback address.
    pub auth: Option<AuthConfig>,
    /// Serve without `[auth]` on a non-loopback address anyway (anyone who can reach the port
    /// may submit and cancel).
    pub allow_insecure_listen: bool,
    /// Who runs the attempts: `"process"` (local child processes on this machine's devices)
    /// or `"slurm"` (one `sbatch` job per attempt; see `[slurm]` and docs/SLURM.md).
    pub executor: ExecutorKind,
    /// The Slurm executor's settings (only with `executor = "slurm"`).
    pub slurm: Option<crate::executor::slurm::SlurmConfig>,
}

/// Which executor runs the attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    /// Local `caudad work` child processes.
    #[default]
    Process,
    /// Slurm batch jobs.
    Slurm,
}

/// `[auth]`: who may call the public API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub users: Vec<UserConfig>,
}

/// One `[[auth.users]]` entry: a name and the SHA-256 of its token (`caudad hash-token`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// Lowercase hex SHA-256 of the bearer token (64 characters).
    pub token_sha256: String,
    /// An admin may cancel anyone's runs and submit as any user.
    #[serde(default)]
    pub admin: bool,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("caudad-data"),
            devices: None,
            max_retries: 2,
            kill_grace_ms: 10_000,
            heartbeat_timeout_ms: 30_000,
            keep_checkpoints: 2,
            inbox: None,
            presets: None,
            scheduler: SchedulerConfig::default(),
            auth: None,
            allow_insecure_listen: false,
            executor: ExecutorKind::Process,
            slurm: None,
        }
    }
}

impl DaemonConfig {
    /// Parses config text; `path` names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::Parse {
                path: path.into(),
                message: format!(
                    "config is {} bytes; the limit is {MAX_CONFIG_BYTES}",
                    text.len()
                ),
            });
        }
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        if let Some(list) = &config.devices {
            Self::override_inventory(path, list)?;
        }
        if let Some(auth) = &config.auth {
            auth.validate().map_err(|message| ConfigError::Parse {
                path: path.into(),
                message,
            })?;
        }
        config
            .validate_executor()
            .map_err(|message| ConfigError::Parse {
                path: path.into(),
                message,
            })?;
        Ok(config)
    }

    /// `[slurm]` only with `executor = "slurm"`, and valid.
    fn validate_executor(&self) -> Result<(), String> {
        match (&self.executor, &self.slurm) {
            (ExecutorKind::Process, Some(_)) => Err(
                "[slurm] is set but executor is \"process\"; set executor = \"slurm\" or remove [slurm]"
                    .into(),
            ),
            (_, Some(slurm)) => slurm.validate(),
            _ => Ok(()),
        }
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// The device inventory: the override list, or else discovery: one CPU slot per available
    /// core plus every GPU NVML finds (none without a driver; the reason is logged).
    pub fn inventory(&self, path: &Path) -> Result<Inventory, ConfigError> {
        match &self.devices {
            Some(list) => Self::override_inventory(path, list),
            None => Self::discovered_inventory(path),
        }
    }

    fn discovered_inventory(path: &Path) -> Result<Inventory, ConfigError> {
        let found = gpu::discover();
        if let Some(note) = &found.note {
            tracing::info!("GPU discovery: {note}");
        }
        for g in &found.gpus {
            tracing::info!(
                "found gpu:{} {} ({} MiB, {})",
                g.index,
                g.model,
                g.memory_total_mb,
                g.uuid
            );
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        found
            .inventory(cpus)
            .map_err(|source| ConfigError::Devices {
                path: path.into(),
                source,
            })
    }

    fn override_inventory(path: &Path, list: &[String]) -> Result<Inventory, ConfigError> {
        Inventory::from_spec(list).map_err(|source| ConfigError::Devices {
            path: path.into(),
            source,
        })
    }
}

impl AuthConfig {
    /// At least one user; names non-empty and unique; every hash 64 lowercase hex digits.
    fn validate(&self) -> Result<(), String> {
        if self.users.is_empty() {
            return Err("auth.users: no users; add one or remove [auth]".into());
        }
        let mut names = std::collections::HashSet::new();
        let mut hashes = std::collections::HashSet::new();
        for (i, u) in self.users.iter().enumerate() {
            if u.name.trim().is_empty() {
                return Err(format!("auth.users[{i}].name: empty"));
            }
            if !names.insert(u.name.as_str()) {
                return Err(format!("auth.users[{i}].name: {:?} appears twice", u.name));
            }
            let hex = u.token_sha256.len() == 64
                && u.token_sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                return Err(format!(
                    "auth.users[{i}].token_sha256: not 64 lowercase hex digits (use `caudad hash-token`)"
                ));
            }
            if !hashes.insert(u.token_sha256.as_str()) {
                return Err(format!(
                    "auth.users[{i}].token_sha256: the same token as another user"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/caudad.toml"
        ));
        let config = DaemonConfig::load(path).expect("examples/caudad.toml parses");
        assert_eq!(config.devices.as_deref().map(<[String]>::len), Some(1));
        assert_eq!(config.max_retries, 2);
        assert!(config.scheduler.fair_share);
        let inventory = config.inventory(path).expect("inventory");
        assert_eq!((inventory.cpu_slots(), inventory.gpu_count()), (2, 0));
        assert!(inventory.from_override());
    }

    #[test]
    fn the_documented_auth_block_parses_once_uncommented() {
        let text = include_str!("../../examples/caudad.toml");
        let start = text.find("# [auth]").expect("the example documents [auth]");
        let block: String = text[start..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let config = DaemonConfig::parse(
            Path::new("example"),
            &format!("{}\n{block}", &text[..start]),
        )
        .expect("the [auth] block parses");
        let users = config.auth.expect("auth").users;
        assert_eq!(users.len(), 2);
        assert_eq!(
            users[1].token_sha256,
            crate::store::sha256_hex(b"root-token")
        );
        assert!(users[1].admin && !users[0].admin);
        assert!(!config.allow_insecure_listen);
    }

    #[test]
    fn without_an_override_the_inventory_is_discovered() {
        let p = Path::new("t.toml");
        let inventory = DaemonConfig::default()
            .inventory(p)
            .expect("discovery never fails");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let max = crate::scheduler::MAX_CPU_SLOTS as usize;
        assert_eq!(inventory.cpu_slots(), cores.min(max));
        assert_eq!(inventory.gpu_count(), gpu::discover().gpus.len());
        assert!(!inventory.from_override());
    }

    #[test]
    fn unknown_keys_and_bad_devices_are_errors() {
        let p = Path::new("t.toml");
        let err = DaemonConfig::parse(p, "listn = \"127.0.0.1:1\"").unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
        let err = DaemonConfig::parse(p, "[scheduler]\nbackfil = true").unwrap_err();
        assert!(err.to_string().contains("backfil"), "{err}");
        let err = DaemonConfig::parse(p, "devices = [\"tpu:0\"]").unwrap_err();
        assert!(err.to_string().contains("tpu:0"), "{err}");
        assert_eq!(DaemonConfig::parse(p, "").unwrap(), DaemonConfig::default());
    }

    #[test]
    fn the_documented_slurm_block_parses_once_uncommented() {
        let text = include_str!("../../examples/caudad.toml");
        let start = text
            .find("# executor = \"slurm\"")
            .expect("the example documents slurm");
        let end = text[start..].find("\n\n").map_or(text.len(), |i| start + i);
        let block: String = text[start..end]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let config = DaemonConfig::parse(Path::new("example"), &block).expect("[slurm] parses");
        assert_eq!(config.executor, ExecutorKind::Slurm);
        let slurm = config.slurm.expect("slurm");
        assert_eq!(slurm.partition.as_deref(), Some("gpu"));
        assert_eq!(slurm.shards_per_gpu, Some(4));
        assert_eq!(
            slurm.worker_daemon_url.as_deref(),
            Some("http://login1.example.org:50051")
        );
    }

    #[test]
    fn slurm_settings_need_the_slurm_executor_and_name_bad_keys() {
        let p = Path::new("t.toml");
        let c = DaemonConfig::parse(p, "executor = \"slurm\"").expect("defaults");
        assert_eq!((c.executor, c.slurm), (ExecutorKind::Slurm, None));
        for (text, key) in [
            ("[slurm]\npartition = \"gpu\"", "executor = \"slurm\""),
            (
                "executor = \"slurm\"\n[slurm]\ncpus_per_task = 0",
                "slurm.cpus_per_task",
            ),
            ("executor = \"k8s\"", "k8s"),
        ] {
            let err = DaemonConfig::parse(p, text).unwrap_err();
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn auth_users_are_validated() {
        let p = Path::new("t.toml");
        let hash = "a".repeat(64);
        let ok = format!(
            "[auth]\nusers = [{{ name = \"ada\", token_sha256 = \"{hash}\", admin = true }}]"
        );
        let config = DaemonConfig::parse(p, &ok).expect("valid [auth]");
        let users = config.auth.expect("auth").users;
        assert_eq!((users[0].name.as_str(), users[0].admin), ("ada", true));
        for (text, key) in [
            ("[auth]\nusers = []".to_string(), "auth.users"),
            (
                "[auth]\nusers = [{ name = \"ada\", token_sha256 = \"abc\" }]".to_string(),
                "auth.users[0].token_sha256",
            ),
            (
                format!(
                    "[auth]\nusers = [{{ name = \"a\", token_sha256 = \"{hash}\" }}, {{ name = \"a\", token_sha256 = \"{}\" }}]",
                    "b".repeat(64)
                ),
                "auth.users[1].name",
            ),
            (
                format!(
                    "[auth]\nusers = [{{ name = \"a\", token_sha256 = \"{hash}\", root = true }}]"
                ),
                "root",
            ),
        ] {
            let err = DaemonConfig::parse(p, &text).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
