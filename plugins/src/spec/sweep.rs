//! `[sweep]`: a cartesian grid over presets (`method`) and dotted keys (`"train.seed"`),
//! expanded into one spec per grid point, each named `<name>/<key>=<value>,...`.

use std::collections::BTreeMap;

use super::{ExperimentSpec, Result, invalid};

/// Expands a spec's grid; a spec without `[sweep]` is returned as its only run.
pub fn expand_sweep(origin: &str, spec: &ExperimentSpec) -> Result<Vec<ExperimentSpec>> {
    let mut base = spec.clone();
    let grid = std::mem::take(&mut base.sweep);
    let base_value =
        toml::Value::try_from(&base).map_err(|e| invalid(origin, "sweep", e.to_string()))?;
    let mut out = Vec::new();
    for (value, labels) in grid_points(origin, &grid, &base_value)? {
        let mut run: ExperimentSpec = value
            .try_into()
            .map_err(|e: toml::de::Error| invalid(origin, "sweep", e.message().to_string()))?;
        if !labels.is_empty() {
            run.name = format!("{}/{}", spec.name, labels.join(","));
        }
        out.push(run);
    }
    Ok(out)
}

/// The points of a `[sweep]` grid over `base` (a spec as a TOML value, without its `sweep`):
/// each a copy of `base` with the grid's dotted keys set, and its labels (`key=value`, in key
/// order) that name the point. The one grid expansion for engine specs and command runs.
pub fn grid_points(
    origin: &str,
    grid: &BTreeMap<String, Vec<toml::Value>>,
    base: &toml::Value,
) -> Result<Vec<(toml::Value, Vec<String>)>> {
    let mut size = 1usize;
    for (key, values) in grid {
        if values.is_empty() {
            return Err(invalid(
                origin,
                format!("sweep.{key}"),
                "an empty list makes an empty grid",
            ));
        }
        size = size.saturating_mul(values.len());
    }
    if size > super::MAX_GRID_RUNS {
        return Err(invalid(
            origin,
            "sweep",
            format!(
                "the grid has {size} runs; the limit is {}",
                super::MAX_GRID_RUNS
            ),
        ));
    }
    let mut out = Vec::with_capacity(size);
    for i in 0..size {
        let mut value = base.clone();
        let mut labels = Vec::new();
        let mut rest = i;
        for (key, values) in grid {
            let v = &values[rest % values.len()];
            rest /= values.len();
            set_dotted(&mut value, key)
                .map_err(|m| invalid(origin, format!("sweep.{key}"), m))?
                .clone_from(v);
            let shown = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            labels.push(format!("{key}={shown}"));
        }
        out.push((value, labels));
    }
    Ok(out)
}

/// The slot a dotted key names, creating tables along the way (a new slot holds `false`).
pub fn set_dotted<'a>(
    value: &'a mut toml::Value,
    key: &str,
) -> std::result::Result<&'a mut toml::Value, String> {
    let mut cur = value;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let table = cur
            .as_table_mut()
            .ok_or_else(|| format!("`{part}` is not inside a table"))?;
        if i + 1 == parts.len() {
            return Ok(table
                .entry(part.to_string())
                .or_insert(toml::Value::Boolean(false)));
        }
        cur = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    Err("empty key".into())
}
