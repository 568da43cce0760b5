//! A command-run spec: `[command]` describes each run as a program to execute instead of an
//! engine recipe (docs/COMMAND_RUNS.md). Strict where cauda gives keys a meaning (`name`,
//! `method`, `[command]`, `[resources]`, `[report]`, `[sweep]` and the well-known LT keys),
//! open elsewhere: every other key is a parameter the program's `{placeholders}` may name.
//! Expansion gives one [`CommandRun`] per grid point with its placeholders filled, so a bad
//! spec is refused whole, naming the key and line, before anything is stored.

use std::collections::BTreeMap;

use cauda_plugins::spec::{
    Coordinate, MAX_SPEC_BYTES, ReportSection, ResourcesSection, SpecError, grid_points,
    parse_error, point_name, set_dotted,
};
use serde_json::Value;

use super::placeholders::{self, RUNTIME, SHORTCUTS};
use super::run::{CommandRun, CommandSection};

type Result<T> = std::result::Result<T, SpecError>;

/// Top-level keys a parameter may not take: they are placeholders of their own.
const RESERVED: [&str; 8] = [
    "seed",
    "ratio",
    "epochs",
    "balanced",
    "run_dir",
    "checkpoint_dir",
    "run_id",
    "attempt",
];

/// Whether a spec describes command runs (it has a `[command]` table). A spec that does not
/// parse is left to the engine's parser, which names the error.
///
/// Every engine spec used to be parsed twice, here and by the engine (a sixth of a submission's
/// CPU). A key `command` is written out in the text unless an escape (`\u0063ommand`) spells it,
/// so a text with neither `command` nor a backslash has no such key and needs no parse here.
pub fn is_command_spec(text: &str) -> bool {
    text.len() <= MAX_SPEC_BYTES
        && (text.contains("command") || text.contains('\\'))
        && toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("command"))
}

/// One grid point: its run and, with `[report] relative_accuracy`, its balanced references
/// (plain CE on the balanced variant, the method on the balanced variant).
#[derive(Debug, Clone, PartialEq)]
pub struct CommandPoint {
    pub run: CommandRun,
    /// Its coordinates in the spec's grid (empty without `[sweep]`).
    pub coordinates: Vec<Coordinate>,
    pub references: Option<(CommandRun, CommandRun)>,
}

/// Parses, expands and validates a command-run spec; `origin` names it in errors.
pub fn expand(origin: &str, text: &str) -> Result<(String, ReportSection, Vec<CommandPoint>)> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(SpecError::TooLarge {
            origin: origin.into(),
            size: text.len(),
            limit: MAX_SPEC_BYTES,
        });
    }
    let bad = |key: &str, message: String| invalid(origin, text, key, message);
    let mut table: toml::Table = toml::from_str(text).map_err(|e| parse_error(origin, text, e))?;
    let name = match table.get("name") {
        Some(toml::Value::String(s)) if !s.is_empty() && s.len() <= 128 => s.clone(),
        Some(_) => {
            return Err(bad(
                "name",
                "must be a string of 1 to 128 characters".into(),
            ));
        }
        None => return Err(bad("name", "missing: every spec has a name".into())),
    };
    let report: ReportSection = take(&mut table, "report", origin, text)?.unwrap_or_default();
    let sweep: BTreeMap<String, Vec<toml::Value>> =
        take(&mut table, "sweep", origin, text)?.unwrap_or_default();
    for key in sweep.keys() {
        if key == "name" || key.starts_with("report") || key.starts_with("sweep") {
            return Err(bad(&format!("sweep.{key}"), "cannot be swept".into()));
        }
    }
    for key in table.keys() {
        if RESERVED.contains(&key.as_str()) {
            return Err(bad(
                key,
                format!(
                    "`{key}` is a placeholder of its own; set the key it stands for ({})",
                    shortcut_help()
                ),
            ));
        }
    }
    let mut points = Vec::new();
    for (value, coordinates) in grid_points(origin, &sweep, &toml::Value::Table(table))? {
        let point_name = point_name(&name, &coordinates);
        let run = point(origin, text, &point_name, value.clone())?;
        let references = if report.relative_accuracy && !run.balanced() {
            Some(references(origin, text, &point_name, value)?)
        } else {
            None
        };
        points.push(CommandPoint {
            run,
            coordinates,
            references,
        });
    }
    Ok((name, report, points))
}

/// The balanced references of a point: the same command with `data.balanced_variant = true`,
/// once as `ce` and once as the method. The program must take both from its placeholders.
fn references(
    origin: &str,
    text: &str,
    name: &str,
    value: toml::Value,
) -> Result<(CommandRun, CommandRun)> {
    // The placeholders the point's argv, env values and cwd name (unparsable templates are
    // reported by `point` with their key).
    let mut named = Vec::new();
    if let Some(command) = value.get("command") {
        let argv = command.get("argv").and_then(toml::Value::as_array);
        let env = command.get("env").and_then(toml::Value::as_table);
        let templates = argv
            .into_iter()
            .flatten()
            .chain(env.into_iter().flat_map(|t| t.values()))
            .chain(command.get("cwd"))
            .filter_map(toml::Value::as_str);
        for t in templates {
            named.extend(placeholders::keys(t).unwrap_or_default());
        }
    }
    let uses = |needle: &[&str]| named.iter().any(|k| needle.contains(&k.as_str()));
    if !uses(&["balanced", "data.balanced_variant"]) || !uses(&["method"]) {
        return Err(invalid(
            origin,
            text,
            "report.relative_accuracy",
            "a command run's balanced references run the same command with \
             `data.balanced_variant = true` (and `method = \"ce\"` for the CE reference): pass \
             `{balanced}` and `{method}` to the program in command.argv, env or cwd"
                .into(),
        ));
    }
    let mut own = value;
    *set_dotted(&mut own, "data.balanced_variant")
        .map_err(|m| invalid(origin, text, "data", m))? = toml::Value::Boolean(true);
    let mut ce = own.clone();
    *set_dotted(&mut ce, "method").map_err(|m| invalid(origin, text, "method", m))? =
        toml::Value::String("ce".into());
    Ok((
        point(origin, text, &format!("{name}/ce-balanced"), ce)?,
        point(origin, text, &format!("{name}/balanced"), own)?,
    ))
}

/// One point's run: its sections read, its well-known keys checked, its placeholders filled.
fn point(origin: &str, text: &str, name: &str, value: toml::Value) -> Result<CommandRun> {
    let bad = |key: &str, message: String| invalid(origin, text, key, message);
    let toml::Value::Table(mut table) = value else {
        return Err(bad("", "a spec is a table".into()));
    };
    table.remove("name");
    let method = match table.remove("method") {
        Some(toml::Value::String(s)) if !s.is_empty() && s.len() <= 128 => s,
        Some(_) => {
            return Err(bad(
                "method",
                "must be a string of 1 to 128 characters".into(),
            ));
        }
        None => "command".into(),
    };
    let command: CommandSection = take(&mut table, "command", origin, text)?
        .ok_or_else(|| bad("command", "missing".into()))?;
    let resources: ResourcesSection =
        take(&mut table, "resources", origin, text)?.unwrap_or_default();
    resources.check(origin)?;
    let params = match serde_json::to_value(&table) {
        Ok(Value::Object(map)) => map,
        _ => return Err(bad("", "parameters must be plain TOML values".into())),
    };
    let mut run = CommandRun {
        name: name.to_string(),
        method,
        command,
        resources,
        params,
    };
    run.check().map_err(|(key, message)| bad(&key, message))?;
    fill(&mut run).map_err(|(key, message)| bad(&key, message))?;
    Ok(run)
}

/// Phase 1 of the placeholders over argv, env and cwd.
fn fill(run: &mut CommandRun) -> std::result::Result<(), (String, String)> {
    let snapshot = run.clone();
    let value = |k: &str| snapshot.placeholder(k);
    for (i, arg) in run.command.argv.iter_mut().enumerate() {
        *arg = placeholders::fill_spec(arg, value)
            .map_err(|e| (format!("command.argv[{i}]"), format!("`{arg}`: {e}")))?;
    }
    for (k, v) in &mut run.command.env {
        *v = placeholders::fill_spec(v, value)
            .map_err(|e| (format!("command.env.{k}"), format!("`{v}`: {e}")))?;
    }
    if let Some(cwd) = &mut run.command.cwd {
        *cwd = placeholders::fill_spec(cwd, value)
            .map_err(|e| ("command.cwd".to_string(), format!("`{cwd}`: {e}")))?;
        if !(cwd.starts_with('/') || cwd.starts_with("{run_dir}")) {
            return Err((
                "command.cwd".into(),
                format!("`{cwd}` is relative; write an absolute path (or one under {{run_dir}})"),
            ));
        }
    }
    Ok(())
}

/// What `{...}` may name, for error messages.
pub fn shortcut_help() -> String {
    let shortcuts: Vec<String> = SHORTCUTS
        .iter()
        .map(|(p, k)| format!("{{{p}}} = {k}"))
        .collect();
    format!(
        "{}, {{method}}, {{name}}; on the worker {}; or any dotted key of the spec",
        shortcuts.join(", "),
        RUNTIME.map(|r| format!("{{{r}}}")).join(", ")
    )
}

/// Removes and deserializes a section, naming the key (and line) a bad value sits at.
fn take<T: serde::de::DeserializeOwned>(
    table: &mut toml::Table,
    key: &str,
    origin: &str,
    text: &str,
) -> Result<Option<T>> {
    let Some(value) = table.remove(key) else {
        return Ok(None);
    };
    value
        .try_into()
        .map(Some)
        .map_err(|e: toml::de::Error| invalid(origin, text, key, e.message().to_string()))
}

/// A spec error naming `key` and, where the text has it, the line its key (or table) is on.
fn invalid(origin: &str, text: &str, key: &str, message: String) -> SpecError {
    let message = match line_of(text, key) {
        Some(line) => format!("line {line}: {message}"),
        None => message,
    };
    SpecError::Invalid {
        origin: origin.into(),
        key: key.into(),
        message,
    }
}

/// The 1-based line that sets a dotted key: its own `[table]` header, or the line of its first
/// segment under the longest table header it starts with (`command.argv[2]` -> the `argv =`
/// line under `[command]`).
fn line_of(text: &str, key: &str) -> Option<usize> {
    let key = key.split('[').next().unwrap_or(key);
    let lines: Vec<&str> = text.lines().collect();
    if let Some(h) = lines.iter().position(|l| l.trim() == format!("[{key}]")) {
        return Some(h + 1);
    }
    let parts: Vec<&str> = key.split('.').filter(|p| !p.is_empty()).collect();
    for split in (0..parts.len()).rev() {
        let (table, rest) = parts.split_at(split);
        let body = if table.is_empty() {
            0
        } else {
            let header = format!("[{}]", table.join("."));
            match lines.iter().position(|l| l.trim() == header) {
                Some(h) => h + 1,
                None => continue,
            }
        };
        for (i, line) in lines.iter().enumerate().skip(body) {
            let line = line.trim_start();
            if line.starts_with('[') {
                break;
            }
            if let Some((k, _)) = line.split_once('=')
                && k.trim().trim_matches('"') == rest[0]
            {
                return Some(i + 1);
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "spec_test.rs"]
mod tests;
