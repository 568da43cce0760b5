//! One command run as stored with its run record: the program (argv, env, cwd with the spec's
//! placeholders filled), its limits, its resources, and the point's parameters kept at the top
//! level beside them, so `train.seed` or `data.imbalance.ratio` read the same as an engine
//! run's. Its config hash covers everything but the labels, like an engine run's.

use std::collections::BTreeMap;

use cauda_plugins::spec::ResourcesSection;
use cauda_plugins::train::canonical_json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::placeholders::{self, MAX_ARG_BYTES, SHORTCUTS};

/// What a command run records as its engine (`RunRecord::engine`): its numbers come from the
/// program, not from any fingerprinted engine.
pub const COMMAND_ENGINE: &str = "command";

/// Most arguments and environment variables a command may have.
pub const MAX_ARGS: usize = 256;
/// `command.report_timeout_s`: the default and the largest (7 days).
pub const DEFAULT_REPORT_TIMEOUT_S: u64 = 3600;
pub const MAX_REPORT_TIMEOUT_S: u64 = 7 * 24 * 3600;
/// `command.max_output_mb`: the default and the largest.
pub const DEFAULT_MAX_OUTPUT_MB: u64 = 64;
pub const MAX_OUTPUT_MB: u64 = 4096;

fn default_report_timeout() -> u64 {
    DEFAULT_REPORT_TIMEOUT_S
}

fn default_max_output() -> u64 {
    DEFAULT_MAX_OUTPUT_MB
}

/// `[command]`: the program and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSection {
    /// The program and its arguments; `argv[0]` is found on the worker's `PATH` (or `cwd`).
    pub argv: Vec<String>,
    /// The working directory (default: the run directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Extra environment (names may not start with `CAUDA_` or be `CUDA_VISIBLE_DEVICES`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Longest time without a report line (from the start, between lines) before the run is
    /// ended as stuck.
    #[serde(default = "default_report_timeout")]
    pub report_timeout_s: u64,
    /// Most stdout + stderr output (MiB) before the run is ended as flooding.
    #[serde(default = "default_max_output")]
    pub max_output_mb: u64,
}

/// One resolved command run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRun {
    pub name: String,
    pub method: String,
    pub command: CommandSection,
    #[serde(default)]
    pub resources: ResourcesSection,
    /// Every other key of the spec's point (`train`, `data`, free parameters).
    #[serde(flatten)]
    pub params: serde_json::Map<String, Value>,
}

impl CommandRun {
    /// The value at a dotted key of the parameters.
    pub fn param(&self, dotted: &str) -> Option<&Value> {
        let mut parts = dotted.split('.');
        let mut cur = self.params.get(parts.next()?)?;
        for part in parts {
            cur = cur.get(part)?;
        }
        Some(cur)
    }

    /// `train.seed` (0 when not set).
    pub fn seed(&self) -> u64 {
        self.param("train.seed")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// `data.imbalance.ratio`, when set.
    pub fn ratio(&self) -> Option<f64> {
        self.param("data.imbalance.ratio").and_then(Value::as_f64)
    }

    /// `train.epochs` (0 when not set: progress is then unknown).
    pub fn epochs(&self) -> usize {
        self.param("train.epochs")
            .and_then(Value::as_u64)
            .and_then(|e| usize::try_from(e).ok())
            .unwrap_or(0)
    }

    /// `data.balanced_variant` (a balanced reference run).
    pub fn balanced(&self) -> bool {
        self.param("data.balanced_variant")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// What placeholder `key` stands for at submission (not the runtime ones).
    pub fn placeholder(&self, key: &str) -> Result<String, String> {
        match key {
            "method" => return Ok(self.method.clone()),
            "name" => return Ok(self.name.clone()),
            "balanced" => return Ok(self.balanced().to_string()),
            _ => {}
        }
        let dotted = SHORTCUTS
            .iter()
            .find(|(p, _)| *p == key)
            .map_or(key, |(_, k)| k);
        let value = self.param(dotted).ok_or_else(|| {
            format!(
                "`{{{key}}}` names `{dotted}`, which the spec does not set; placeholders: {}",
                super::spec::shortcut_help()
            )
        })?;
        placeholders::scalar_text(value).map_err(|e| format!("`{dotted}` {e}"))
    }

    /// The run's config hash: sha256 of its canonical JSON without its labels (name, method)
    /// and resources, so the same command with the same parameters is one run.
    pub fn config_hash(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            for key in ["name", "method", "resources"] {
                object.remove(key);
            }
        }
        let digest = Sha256::digest(canonical_json(&value).as_bytes());
        cauda_proto::hex(&digest)
    }

    /// Checks the limits and the well-known keys; the error names the key.
    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: String| Err((key.to_string(), message));
        let c = &self.command;
        if c.argv.is_empty() || c.argv[0].trim().is_empty() {
            return bad(
                "command.argv",
                "must name a program: argv = [\"python\", ...]".into(),
            );
        }
        if c.argv.len() > MAX_ARGS || c.env.len() > MAX_ARGS {
            return bad(
                "command.argv",
                format!("at most {MAX_ARGS} arguments and {MAX_ARGS} environment variables"),
            );
        }
        for (i, a) in c.argv.iter().enumerate() {
            if a.len() > MAX_ARG_BYTES || a.contains('\0') {
                return bad(
                    &format!("command.argv[{i}]"),
                    format!("at most {MAX_ARG_BYTES} bytes, no NUL"),
                );
            }
        }
        for (k, v) in &c.env {
            let name_ok = !k.is_empty()
                && !k.starts_with(|ch: char| ch.is_ascii_digit())
                && k.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
            if !name_ok {
                return bad(
                    &format!("command.env.{k}"),
                    "not a variable name ([A-Za-z_][A-Za-z0-9_]*)".into(),
                );
            }
            if k.starts_with("CAUDA_") || k == "CUDA_VISIBLE_DEVICES" {
                return bad(
                    &format!("command.env.{k}"),
                    "is set by cauda for every run (docs/COMMAND_RUNS.md)".into(),
                );
            }
            if v.len() > MAX_ARG_BYTES || v.contains('\0') {
                return bad(
                    &format!("command.env.{k}"),
                    format!("at most {MAX_ARG_BYTES} bytes, no NUL"),
                );
            }
        }
        if !(1..=MAX_REPORT_TIMEOUT_S).contains(&c.report_timeout_s) {
            return bad(
                "command.report_timeout_s",
                format!(
                    "{} is out of range; allowed 1 ..= {MAX_REPORT_TIMEOUT_S}",
                    c.report_timeout_s
                ),
            );
        }
        if !(1..=MAX_OUTPUT_MB).contains(&c.max_output_mb) {
            return bad(
                "command.max_output_mb",
                format!(
                    "{} is out of range; allowed 1 ..= {MAX_OUTPUT_MB}",
                    c.max_output_mb
                ),
            );
        }
        if let Some(v) = self.param("train.seed")
            && v.as_u64().is_none()
        {
            return bad("train.seed", format!("{v} is not a non-negative integer"));
        }
        if let Some(v) = self.param("train.epochs")
            && !v.as_u64().is_some_and(|e| (1..=100_000).contains(&e))
        {
            return bad(
                "train.epochs",
                format!("{v} is out of range; allowed 1 ..= 100000"),
            );
        }
        if let Some(v) = self.param("data.imbalance.ratio")
            && !v.as_f64().is_some_and(|r| r.is_finite() && r >= 1.0)
        {
            return bad(
                "data.imbalance.ratio",
                format!("{v} is out of range; allowed >= 1"),
            );
        }
        if let Some(v) = self.param("data.balanced_variant")
            && !v.is_boolean()
        {
            return bad("data.balanced_variant", format!("{v} is not true or false"));
        }
        Ok(())
    }
}
