//! An experiment's report as the survey reads it (Zhang et al., "Deep Long-Tailed Learning: A
//! Survey", TPAMI 2023): one row per configuration of its grid with the seeds folded in (mean and
//! sample standard deviation), overall and many/medium/few-shot top-1 of the final model, the
//! validation-selected and (marked optimistic) best-on-test top-1, relative accuracy
//! `A_r = A_t / max(A_v, A_b)` from the balanced reference runs, throughput and device-hours,
//! and the engines that trained the row (a row of an older engine is marked so).
//! Pure over stored records; accuracies are fractions in [0, 1].

use serde_json::Value;

use super::engines::is_current_engine;
use super::{CoreError, Daemon, Result};
use crate::model::{ExperimentId, RunId, RunRecord, RunState};
use crate::run_config::RunConfig;

/// One row: a configuration of the grid (a method at an imbalance ratio), over its seeds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportRow {
    /// The grid point's name without its seed, e.g. `fmnist-lt/method=crt,ratio=100`.
    pub label: String,
    pub method: String,
    /// The training set's imbalance ratio (`None` for a data set used as is).
    pub ratio: Option<f64>,
    /// Grid points in the row, and how many of their runs succeeded / failed or were cancelled.
    pub runs: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Distinct seeds among the succeeded runs.
    pub seeds: usize,
    pub top1_mean: Option<f64>,
    pub top1_std: Option<f64>,
    /// Mean test top-5 (data sets of more than 5 classes).
    pub top5_mean: Option<f64>,
    pub many: Option<f64>,
    pub medium: Option<f64>,
    pub few: Option<f64>,
    /// Sample standard deviations over seeds of many/medium/few.
    pub many_std: Option<f64>,
    pub medium_std: Option<f64>,
    pub few_std: Option<f64>,
    /// Mean lowest per-class accuracy.
    pub worst_class: Option<f64>,
    /// Mean expected calibration error and negative log-likelihood.
    pub ece: Option<f64>,
    pub nll: Option<f64>,
    /// Test top-1 at the best validation epoch (runs with a validation split).
    pub val_selected_top1: Option<f64>,
    /// The best test top-1 over evaluations: optimistic, picked on the test set.
    pub best_test_top1: Option<f64>,
    /// `A_t / max(A_v, A_b)`, with the means over seeds.
    pub relative_accuracy: Option<f64>,
    pub a_t: Option<f64>,
    pub a_v: Option<f64>,
    pub a_b: Option<f64>,
    pub images_per_sec: Option<f64>,
    /// Wall-clock hours of the row's runs, and those hours times the GPUs (or share) they held.
    pub hours: f64,
    pub gpu_hours: f64,
    /// The engine fingerprints of the row's runs and references, distinct, in grid order
    /// (empty string: a run stored before fingerprints).
    pub engines: Vec<String>,
    /// Some run or reference of the row was trained (or planned) by another engine than this
    /// daemon's.
    pub older_engine: bool,
}

/// A whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub experiment: ExperimentId,
    pub name: String,
    pub rows: Vec<ReportRow>,
    /// This daemon's engine fingerprint, which `ReportRow::older_engine` compares with.
    pub engine: String,
}

impl Daemon {
    /// The report of an experiment, from its grid points and their stored runs.
    pub fn report(&self, id: ExperimentId) -> Result<Report> {
        let (experiment, runs) = self.get_experiment(id)?;
        let find = |rid: RunId| {
            runs.iter()
                .find(|r| r.id == rid)
                .ok_or(CoreError::RunNotFound(rid))
        };
        let mut rows: Vec<(ReportRow, Group)> = Vec::new();
        for point in &experiment.points {
            let run = find(point.run)?;
            let config = RunConfig::from_json(&format!("run {}", run.id), &run.config_json)
                .map_err(CoreError::Internal)?;
            let label = without_seed(&point.name);
            let index = match rows.iter().position(|(r, _)| r.label == label) {
                Some(i) => i,
                None => {
                    let row = ReportRow {
                        label: label.clone(),
                        method: config.method().to_string(),
                        ratio: config.ratio(),
                        ..ReportRow::default()
                    };
                    rows.push((row, Group::default()));
                    rows.len() - 1
                }
            };
            let (row, group) = &mut rows[index];
            let references = match point.references {
                Some((ce, own)) => vec![find(ce)?, find(own)?],
                None => Vec::new(),
            };
            for engine in std::iter::once(run).chain(references).map(|r| &r.engine) {
                if !row.engines.contains(engine) {
                    row.engines.push(engine.clone());
                }
                row.older_engine |= !is_current_engine(engine);
            }
            row.runs += 1;
            let hours = run_hours(run);
            row.hours += hours;
            row.gpu_hours += hours * gpus_held(run);
            match run.state {
                RunState::Succeeded => row.succeeded += 1,
                RunState::Failed | RunState::Cancelled => row.failed += 1,
                RunState::Queued | RunState::Running => {}
            }
            if let Some(summary) = summary(run) {
                group.seeds.push(config.seed());
                group.add(&summary);
            }
            if let Some((ce, own)) = point.references {
                group.a_v.extend(summary(find(ce)?).and_then(|s| top1(&s)));
                group.a_b.extend(summary(find(own)?).and_then(|s| top1(&s)));
            }
        }
        let rows = rows
            .into_iter()
            .map(|(mut row, group)| {
                group.finish(&mut row);
                row
            })
            .collect();
        Ok(Report {
            experiment: id,
            name: experiment.name,
            rows,
            engine: cauda_plugins::train::engine_fingerprint(),
        })
    }
}

/// The values of one row's succeeded runs.
#[derive(Debug, Default)]
struct Group {
    seeds: Vec<u64>,
    top1: Vec<f64>,
    top5: Vec<f64>,
    many: Vec<f64>,
    medium: Vec<f64>,
    few: Vec<f64>,
    worst_class: Vec<f64>,
    ece: Vec<f64>,
    nll: Vec<f64>,
    val_selected: Vec<f64>,
    best_test: Vec<f64>,
    images_per_sec: Vec<f64>,
    a_v: Vec<f64>,
    a_b: Vec<f64>,
}

impl Group {
    fn add(&mut self, s: &Value) {
        let last = &s["last"];
        self.top1.extend(last["test_top1"].as_f64());
        self.top5.extend(last["test_top5"].as_f64());
        self.many.extend(last["many"].as_f64());
        self.medium.extend(last["medium"].as_f64());
        self.few.extend(last["few"].as_f64());
        self.worst_class.extend(last["worst_class"].as_f64());
        self.ece.extend(last["ece"].as_f64());
        self.nll.extend(last["nll"].as_f64());
        self.val_selected.extend(s["val_selected_top1"].as_f64());
        self.best_test.extend(s["best_test_top1"].as_f64());
        self.images_per_sec.extend(s["images_per_sec"].as_f64());
    }

    fn finish(mut self, row: &mut ReportRow) {
        self.seeds.sort_unstable();
        self.seeds.dedup();
        row.seeds = self.seeds.len();
        row.top1_mean = mean(&self.top1);
        row.top1_std = std(&self.top1);
        row.top5_mean = mean(&self.top5);
        row.many = mean(&self.many);
        row.medium = mean(&self.medium);
        row.few = mean(&self.few);
        row.many_std = std(&self.many);
        row.medium_std = std(&self.medium);
        row.few_std = std(&self.few);
        row.worst_class = mean(&self.worst_class);
        row.ece = mean(&self.ece);
        row.nll = mean(&self.nll);
        row.val_selected_top1 = mean(&self.val_selected);
        row.best_test_top1 = mean(&self.best_test);
        row.images_per_sec = mean(&self.images_per_sec);
        row.a_t = row.top1_mean;
        row.a_v = mean(&self.a_v);
        row.a_b = mean(&self.a_b);
        row.relative_accuracy = match (row.a_t, row.a_v, row.a_b) {
            (Some(t), Some(v), Some(b)) if v.max(b) > 0.0 => Some(t / v.max(b)),
            _ => None,
        };
    }
}

fn summary(run: &RunRecord) -> Option<Value> {
    (run.state == RunState::Succeeded)
        .then_some(run.summary_json.as_deref())
        .flatten()
        .and_then(|s| serde_json::from_str(s).ok())
}

fn top1(summary: &Value) -> Option<f64> {
    summary["last"]["test_top1"].as_f64()
}

/// The mean, `None` when empty.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The sample standard deviation (n - 1); 0 for one value, `None` when empty.
pub fn std(values: &[f64]) -> Option<f64> {
    let m = mean(values)?;
    if values.len() < 2 {
        return Some(0.0);
    }
    let ss: f64 = values.iter().map(|v| (v - m) * (v - m)).sum();
    Some((ss / (values.len() - 1) as f64).sqrt())
}

/// A grid point's name without its `train.seed=...` part.
fn without_seed(name: &str) -> String {
    let Some((base, labels)) = name.rsplit_once('/') else {
        return name.to_string();
    };
    let kept: Vec<&str> = labels
        .split(',')
        .filter(|l| !l.starts_with("train.seed="))
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}/{}", kept.join(","))
    }
}

fn run_hours(run: &RunRecord) -> f64 {
    match (run.started_at, run.finished_at) {
        (Some(s), Some(f)) if f >= s => (f - s) as f64 / 3_600_000.0,
        _ => 0.0,
    }
}

fn gpus_held(run: &RunRecord) -> f64 {
    if run.request.gpus > 0 {
        f64::from(run.request.gpus)
    } else {
        run.request.gpu_share.unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_and_labels() {
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[0.5, 0.7]), Some(0.6));
        // numpy: np.std([0.5, 0.7, 0.9], ddof=1) = 0.2
        assert!((std(&[0.5, 0.7, 0.9]).unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(std(&[0.5]), Some(0.0));
        assert_eq!(without_seed("x/method=crt,train.seed=1"), "x/method=crt");
        assert_eq!(without_seed("x/train.seed=1"), "x");
        assert_eq!(without_seed("x"), "x");
        assert_eq!(
            without_seed("x/data.imbalance.ratio=10,method=ce,train.seed=2"),
            "x/data.imbalance.ratio=10,method=ce"
        );
    }
}
