//! `[sweep]`: a cartesian grid over presets (`method`) and dotted keys (`"train.seed"`),
//! expanded into one spec per grid point, each named `<name>/<key>=<value>,...` and carrying its
//! coordinates as values, so that nothing downstream (the report's rows, the plots' panels) has
//! to take a point's name apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ExperimentSpec, Result, invalid};

/// The dotted key of a run's seed: the coordinate a report folds over.
pub const SEED_KEY: &str = "train.seed";

/// One coordinate of a grid point: a swept dotted key and the value this point gives it, as
/// shown in the point's name (a string without quotes, other values in TOML).
///
/// Stored by position inside a run's brief (`cauda-store`'s `brief.rs`): append fields only,
/// each with `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Coordinate {
    pub key: String,
    pub value: String,
}

impl Coordinate {
    /// Whether this is the seed (`train.seed`), which a report folds over.
    pub fn is_seed(&self) -> bool {
        self.key == SEED_KEY
    }
}

impl std::fmt::Display for Coordinate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// The name of the point at `coordinates` of the grid named `name`: `name/key=value,...`, or
/// `name` alone for a spec without a grid.
pub fn point_name(name: &str, coordinates: &[Coordinate]) -> String {
    if coordinates.is_empty() {
        return name.to_string();
    }
    let labels: Vec<String> = coordinates.iter().map(Coordinate::to_string).collect();
    format!("{name}/{}", labels.join(","))
}

/// One point of a spec's grid: the spec it runs (named by [`point_name`]) and its coordinates
/// in key order.
#[derive(Debug, Clone)]
pub struct GridPoint {
    pub spec: ExperimentSpec,
    pub coordinates: Vec<Coordinate>,
}

/// Expands a spec's grid; a spec without `[sweep]` is returned as its only point, with no
/// coordinates.
pub fn expand_sweep(origin: &str, spec: &ExperimentSpec) -> Result<Vec<GridPoint>> {
    if spec.sweep.is_empty() {
        // The spec is its one point. A grid point is built through a TOML value, which gives
        // an unswept spec back unchanged (`a_spec_without_a_grid_is_its_own_only_point`), so
        // that detour, a third of resolving a one-run spec, is skipped.
        let mut run = spec.clone();
        run.name = point_name(&spec.name, &[]);
        return Ok(vec![GridPoint {
            spec: run,
            coordinates: Vec::new(),
        }]);
    }
    let mut base = spec.clone();
    let grid = std::mem::take(&mut base.sweep);
    let base_value =
        toml::Value::try_from(&base).map_err(|e| invalid(origin, "sweep", e.to_string()))?;
    let mut out = Vec::new();
    for (value, coordinates) in grid_points(origin, &grid, &base_value)? {
        let mut run: ExperimentSpec = value
            .try_into()
            .map_err(|e: toml::de::Error| invalid(origin, "sweep", e.message().to_string()))?;
        run.name = point_name(&spec.name, &coordinates);
        out.push(GridPoint {
            spec: run,
            coordinates,
        });
    }
    Ok(out)
}

/// The points of a `[sweep]` grid over `base` (a spec as a TOML value, without its `sweep`):
/// each a copy of `base` with the grid's dotted keys set, and its coordinates (in key order)
/// that name the point. The one grid expansion for engine specs and command runs.
pub fn grid_points(
    origin: &str,
    grid: &BTreeMap<String, Vec<toml::Value>>,
    base: &toml::Value,
) -> Result<Vec<(toml::Value, Vec<Coordinate>)>> {
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
        let mut coordinates = Vec::new();
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
            coordinates.push(Coordinate {
                key: key.clone(),
                value: shown,
            });
        }
        out.push((value, coordinates));
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
