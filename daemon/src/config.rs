//! `caudad.toml`: where the daemon listens, where it keeps its data, which devices it may hand
//! out, how it schedules and who may call it (`[auth]`). Strict (`deny_unknown_fields`) so a misspelt key is an error naming
//! it; `examples/caudad.toml` documents every key and is parsed by a test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cauda_plugins::train::Backend;
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
    /// MiB kept free on the data dir's filesystem: below it checkpoint uploads and new
    /// submissions are refused (RESOURCE_EXHAUSTED) so running work can still record its end.
    pub min_free_disk_mb: u64,
    /// A folder watched for spec files to submit (moved to `submitted/` or `rejected/`).
    pub inbox: Option<PathBuf>,
    /// A folder of user presets (`*.toml`), reloaded when it changes.
    pub presets: Option<PathBuf>,
    /// Folders a submitted spec's data paths must resolve under (symlinks followed); absent
    /// means [`DaemonConfig::effective_data_roots`]'s default.
    pub data_roots: Option<Vec<PathBuf>>,
    pub scheduler: SchedulerConfig,
    /// Users and their bearer tokens; absent means no authentication (every caller is
    /// "anonymous"), which is only allowed on a loopback address.
    pub auth: Option<AuthConfig>,
    /// Serve without `[auth]` on a non-loopback address anyway (anyone who can reach the port
    /// may submit and cancel).
    pub allow_insecure_listen: bool,
    /// TLS on the listening port (`[tls]`, both services); absent means plaintext, which with
    /// `[auth]` is only allowed on a loopback address (tokens would cross the network readable).
    pub tls: Option<TlsConfig>,
    /// Per-user limits (`[quotas]`).
    pub quotas: QuotaConfig,
    /// The training backend of runs whose spec names none.
    pub backends: BackendsConfig,
    /// Who runs the attempts: `"process"` (local child processes on this machine's devices)
    /// or `"slurm"` (one `sbatch` job per attempt; see `[slurm]` and docs/SLURM.md).
    pub executor: ExecutorKind,
    /// The Slurm executor's settings (only with `executor = "slurm"`).
    pub slurm: Option<crate::executor::slurm::SlurmConfig>,
    /// The Prometheus endpoint (`[metrics]`); absent means none.
    pub metrics: Option<MetricsConfig>,
    /// Command runs (`[commands]`, docs/COMMAND_RUNS.md): off unless enabled.
    pub commands: CommandsConfig,
}

/// `[commands]`: whether specs may describe command runs (a lab's own programs, run as the
/// daemon's user), and who may submit them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandsConfig {
    pub enabled: bool,
    /// Users (names of `[[auth.users]]`) who may submit command runs; absent means every user.
    /// Admins always may.
    pub users: Option<Vec<String>>,
    /// The folder under which each command run gets its run directory `r-<id>/` (absent:
    /// `<data_dir>/runs`; under Slurm it must be a path the compute nodes can write).
    pub run_root: Option<PathBuf>,
}

/// `[metrics]`: where `GET /metrics` serves the daemon's metrics (OpenMetrics text; see
/// docs/OPERATIONS.md for the families).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// The HTTP address, e.g. "127.0.0.1:9464" (port 0 picks a free port, printed at start).
    #[serde(deserialize_with = "metrics_listen")]
    pub listen: SocketAddr,
}

/// `metrics.listen` as an address, or an error naming the key.
fn metrics_listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "metrics.listen: {text:?} is not an address; write IP:PORT, e.g. \"127.0.0.1:9464\""
        ))
    })
}

/// `[quotas]`: limits per user (absent keys: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// The most queued runs one user may have; a submission that would pass it is refused.
    pub max_queued_runs_per_user: Option<u32>,
    /// The most GPUs (a share counts its fraction) one user's runs hold at once; more wait.
    pub max_gpus_per_user: Option<u32>,
}

/// `[tls]`: the daemon's certificate and key (PEM), and what its workers trust.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The server's private key (PEM: PKCS#8, or PKCS#1 for RSA).
    pub key: PathBuf,
    /// The CA (PEM) that signed `cert`: the daemon's own workers verify it with this; absent
    /// means the system's root certificates.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The name workers check the certificate against when it does not name the address they
    /// dial (the listen IP, or 127.0.0.1 for a wildcard address), e.g. "localhost".
    #[serde(default)]
    pub server_name: Option<String>,
}

/// `[backends]`: the backend a run uses when its spec's `[resources] backend` is absent
/// (docs/GPU.md). Runs on a CPU slot use `flex`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendsConfig {
    /// For runs placed on a GPU (`tch` or `vulkan`, built into this caudad); absent means the
    /// first GPU backend built in (`tch`, then `vulkan`), or `flex` in a flex-only build.
    pub gpu: Option<Backend>,
}

impl BackendsConfig {
    fn validate(&self) -> Result<(), String> {
        if let Some(gpu) = self.gpu {
            if !gpu.runs_on_gpu() {
                return Err(format!(
                    "backends.gpu: '{gpu}' is a CPU backend; allowed: tch, vulkan"
                ));
            }
            gpu.check_built("caudad")
                .map_err(|e| format!("backends.gpu: {e}"))?;
        }
        Ok(())
    }
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
            min_free_disk_mb: crate::store::DEFAULT_MIN_FREE_BYTES >> 20,
            inbox: None,
            presets: None,
            data_roots: None,
            scheduler: SchedulerConfig::default(),
            auth: None,
            allow_insecure_listen: false,
            tls: None,
            quotas: QuotaConfig::default(),
            backends: BackendsConfig::default(),
            executor: ExecutorKind::Process,
            slurm: None,
            metrics: None,
            commands: CommandsConfig::default(),
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
        config
            .backends
            .validate()
            .map_err(|message| ConfigError::Parse {
                path: path.into(),
                message,
            })?;
        if let Some(roots) = &config.data_roots
            && let Some(i) = roots.iter().position(|r| !r.is_absolute())
        {
            return Err(ConfigError::Parse {
                path: path.into(),
                message: format!(
                    "data_roots[{i}]: {:?} is relative; data roots must be absolute paths",
                    roots[i]
                ),
            });
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

    /// The data roots in force: `data_roots` when set, else `<data_dir>/datasets` (made
    /// absolute against the working directory) and `/usr/share/datasets` (where Debian's
    /// `dataset-*` packages install).
    pub fn effective_data_roots(&self) -> Vec<PathBuf> {
        match &self.data_roots {
            Some(roots) => roots.clone(),
            None => {
                let own = self.data_dir.join("datasets");
                vec![
                    std::path::absolute(&own).unwrap_or(own),
                    PathBuf::from("/usr/share/datasets"),
                ]
            }
        }
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
        assert_eq!(config.min_free_disk_mb, 256);
        assert!(config.scheduler.fair_share);
        assert_eq!(config.quotas.max_queued_runs_per_user, Some(1000));
        assert_eq!(config.quotas.max_gpus_per_user, Some(8));
        let inventory = config.inventory(path).expect("inventory");
        assert_eq!((inventory.cpu_slots(), inventory.gpu_count()), (2, 0));
        assert!(inventory.from_override());
        assert_eq!(
            config.data_roots,
            Some(vec![PathBuf::from("/usr/share/datasets")])
        );
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
    fn the_documented_tls_block_parses_once_uncommented() {
        let text = include_str!("../../examples/caudad.toml");
        let start = text.find("# [tls]").expect("the example documents [tls]");
        let block: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with("# "))
            .map(|l| l.trim_start_matches("# "))
            .collect::<Vec<_>>()
            .join("\n");
        let config = DaemonConfig::parse(
            Path::new("example"),
            &format!("{}\n{block}", &text[..start]),
        )
        .expect("the [tls] block parses");
        let tls = config.tls.expect("tls");
        assert_eq!(tls.cert, Path::new("/etc/caudad/server.pem"));
        assert_eq!(tls.key, Path::new("/etc/caudad/server.key"));
        assert_eq!(tls.ca.as_deref(), Some(Path::new("/etc/caudad/ca.pem")));
        assert_eq!(tls.server_name.as_deref(), Some("localhost"));
        let err = DaemonConfig::parse(Path::new("t.toml"), "[tls]\ncert = \"c.pem\"").unwrap_err();
        assert!(err.to_string().contains("key"), "{err}");
    }

    #[test]
    fn data_roots_default_and_must_be_absolute() {
        let p = Path::new("t.toml");
        let config = DaemonConfig::parse(p, "data_dir = \"/srv/cauda\"").expect("parses");
        assert_eq!(
            config.effective_data_roots(),
            vec![
                PathBuf::from("/srv/cauda/datasets"),
                PathBuf::from("/usr/share/datasets")
            ]
        );
        let config =
            DaemonConfig::parse(p, "data_roots = [\"/data\", \"/scratch/sets\"]").expect("parses");
        assert_eq!(
            config.effective_data_roots(),
            vec![PathBuf::from("/data"), PathBuf::from("/scratch/sets")]
        );
        let config = DaemonConfig::parse(p, "data_roots = []").expect("parses");
        assert!(config.effective_data_roots().is_empty());
        let err = DaemonConfig::parse(p, "data_roots = [\"/data\", \"sets\"]").unwrap_err();
        assert!(err.to_string().contains("data_roots[1]"), "{err}");
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
    fn the_gpu_backend_must_be_a_built_gpu_backend() {
        let p = Path::new("t.toml");
        let config = DaemonConfig::parse(p, "[backends]\n").expect("empty [backends]");
        assert_eq!(config.backends.gpu, None);
        for backend in [Backend::Tch, Backend::Vulkan] {
            let text = format!("[backends]\ngpu = \"{backend}\"");
            match DaemonConfig::parse(p, &text) {
                Ok(config) => {
                    assert!(backend.is_built());
                    assert_eq!(config.backends.gpu, Some(backend));
                }
                Err(e) => {
                    assert!(!backend.is_built());
                    let msg = e.to_string();
                    assert!(
                        msg.contains("backends.gpu")
                            && msg.contains(&format!("--features {backend}")),
                        "{msg}"
                    );
                }
            }
        }
        let err = DaemonConfig::parse(p, "[backends]\ngpu = \"flex\"").unwrap_err();
        assert!(err.to_string().contains("CPU backend"), "{err}");
        let err = DaemonConfig::parse(p, "[backends]\ngpu = \"cuda\"").unwrap_err();
        assert!(err.to_string().contains("tch"), "{err}");
        let err = DaemonConfig::parse(p, "[backends]\ncpu = \"flex\"").unwrap_err();
        assert!(err.to_string().contains("cpu"), "{err}");
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
    fn the_documented_metrics_block_parses_once_uncommented() {
        let text = include_str!("../../examples/caudad.toml");
        let start = text
            .find("# [metrics]")
            .expect("the example documents [metrics]");
        let block: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with("# "))
            .map(|l| l.trim_start_matches("# "))
            .collect::<Vec<_>>()
            .join("\n");
        let config = DaemonConfig::parse(
            Path::new("example"),
            &format!("{}\n{block}", &text[..start]),
        )
        .expect("the [metrics] block parses");
        assert_eq!(
            config.metrics,
            Some(MetricsConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 9464))
            })
        );
    }

    #[test]
    fn metrics_are_off_by_default_and_a_bad_address_names_the_key() {
        let p = Path::new("t.toml");
        assert_eq!(DaemonConfig::parse(p, "").unwrap().metrics, None);
        let c = DaemonConfig::parse(p, "[metrics]\nlisten = \"[::1]:0\"").expect("ipv6, port 0");
        assert_eq!(c.metrics.map(|m| m.listen.port()), Some(0));
        for (text, wanted) in [
            ("[metrics]\nlisten = \"localhost:9464\"", "metrics.listen"),
            ("[metrics]\nlisten = \"127.0.0.1\"", "metrics.listen"),
            ("[metrics]\nlisten = 9464", "listen"),
            ("[metrics]", "listen"),
            ("[metrics]\nlisten = \"127.0.0.1:1\"\npath = \"/m\"", "path"),
        ] {
            let err = DaemonConfig::parse(p, text).unwrap_err().to_string();
            assert!(err.contains(wanted), "{text}: {err}");
        }
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
