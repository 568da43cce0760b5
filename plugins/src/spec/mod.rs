//! The experiment spec: the TOML contract the daemon accepts and `caudad train` runs. Parsing is
//! strict (`deny_unknown_fields`), and validation names the key, the line and what is allowed, so
//! a bad spec is rejected before anything runs or is stored.

mod data_section;
mod evaluation_section;
mod experiment;
mod model_section;
mod needs;
mod preset;
mod resolve;
mod sweep;
mod taxonomy;

pub(crate) use data_section::check_pin;
pub use data_section::format_channels;
pub use evaluation_section::{
    AGGREGATION_KEY, AggregationSwitch, EvaluationSection, TestTimeAggregation,
};
pub use experiment::MAX_GPU_MEM_MB;
pub use experiment::{
    AugmentSection, DataFormat, DataSection, ExperimentSpec, ImbalanceSpec, LtProfile,
    MetricsSection, ModelSection, ModuleSection, Normalization, OptimizerSpec, RebalanceSection,
    ReportSection, ResourcesSection, ScheduleSpec, SyntheticConfig, TrainSection,
};
pub use preset::{Preset, PresetBook};
pub use resolve::{HOLDOUT_RULE, ResolvedRun, Stage2Spec};
pub use sweep::{
    Coordinate, GridPoint, SEED_KEY, expand_sweep, grid_points, point_name, set_dotted,
};
pub use taxonomy::Subfamily;

#[cfg(test)]
mod tests;

/// Why a spec was rejected. Messages name the key (dotted path) and, where known, the line.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {key}: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
    #[error("{origin}: spec is {size} bytes; the limit is {limit}")]
    TooLarge {
        origin: String,
        size: usize,
        limit: usize,
    },
}

pub type Result<T> = std::result::Result<T, SpecError>;

/// Largest spec accepted, in bytes.
pub const MAX_SPEC_BYTES: usize = 256 * 1024;
/// Largest grid a `[sweep]` may expand to.
pub const MAX_GRID_RUNS: usize = 10_000;

pub(crate) fn invalid(
    origin: &str,
    key: impl Into<String>,
    message: impl Into<String>,
) -> SpecError {
    SpecError::Invalid {
        origin: origin.to_string(),
        key: key.into(),
        message: message.into(),
    }
}

/// Whether `h` is a SHA-256 as cauda writes it: 64 lowercase hex digits.
pub(crate) fn is_sha256_hex(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Parses TOML of at most [`MAX_SPEC_BYTES`], with errors that name `origin` and the line.
pub(crate) fn parse_bounded<T: serde::de::DeserializeOwned>(origin: &str, text: &str) -> Result<T> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(SpecError::TooLarge {
            origin: origin.into(),
            size: text.len(),
            limit: MAX_SPEC_BYTES,
        });
    }
    toml::from_str(text).map_err(|e| parse_error(origin, text, e))
}

/// Turns a `toml` error into one that says the line and, when the line holds a `key = value`,
/// the dotted key (its table's name and the key) as an invalid value of that key.
pub fn parse_error(origin: &str, text: &str, err: toml::de::Error) -> SpecError {
    let Some(span) = err.span() else {
        return SpecError::Parse {
            origin: origin.to_string(),
            message: err.message().to_string(),
        };
    };
    let start = span.start.min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    let message = format!("line {line}: {}", err.message());
    if let Some(field) = missing_field(err.message()) {
        // The span is the table that lacks the field: the document, or a `[table]` header.
        let here = text.lines().nth(line - 1).unwrap_or("").trim();
        let key = match here.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(table) if start > 0 => format!("{}.{field}", table.trim()),
            _ => field.to_string(),
        };
        return invalid(origin, key, err.message());
    }
    match key_at_line(text, line) {
        Some(key) => invalid(origin, key, message),
        None => SpecError::Parse {
            origin: origin.to_string(),
            message,
        },
    }
}

/// `X` of serde's "missing field `X`".
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")?
        .split('`')
        .next()
        .filter(|f| !f.is_empty())
}

/// The dotted key a `key = value` line sets (`train.epochs`), from the table header above it.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    if here.starts_with('[') || here.starts_with('#') {
        return None;
    }
    let (key, _) = here.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() {
        return None;
    }
    let table = lines[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}
