//! An experiment's report as the survey reads it (Zhang et al., "Deep Long-Tailed Learning: A
//! Survey", TPAMI 2023): one row per configuration of its grid with the seeds folded in (mean and
//! sample standard deviation), overall and many/medium/few-shot top-1 of the final model, the
//! validation-selected and (marked optimistic) best-on-test top-1, relative accuracy
//! `A_r = A_t / max(A_v, A_b)` from the balanced reference runs, throughput and device-hours,
//! and the engines that trained the row (a row of an older engine is marked so); and SADE's
//! test-agnostic accuracies (forward and backward long-tailed test sets): the expectation from
//! the per-class ones, or the runs' own scores after SADE's test-time aggregation where every
//! run of the row has them.
//! Pure over stored records; accuracies are fractions in [0, 1]. Rows are the grid's points
//! grouped by their coordinates other than the seed; the summaries are the engine's typed
//! `RunSummary`s.

use cauda_plugins::metrics::{TEST_AGNOSTIC, test_agnostic};
use cauda_plugins::spec::{Coordinate, point_name};
use cauda_plugins::train::RunSummary;

use super::{CoreError, Daemon, Result};
use crate::model::{ExperimentId, RunId, RunRecord, RunState};
use crate::run_config::RunConfig;

/// One row: a configuration of the grid (a method at an imbalance ratio), over its seeds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportRow {
    /// The grid point's name without its seed, e.g. `fmnist-lt/method=crt,ratio=100`.
    pub label: String,
    /// The row's grid coordinates: its points' coordinates other than the seed, in key order.
    pub coordinates: Vec<Coordinate>,
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
    /// Mean top-1 on SADE's shifted test sets, in `metrics::TEST_AGNOSTIC`'s order (forward 50
    /// to 2, uniform, backward 2 to 50): the fixed model's expectation from its per-class
    /// accuracies, or, when every succeeded run of the row has SADE's test-time aggregation, its
    /// top-1 on each set with the weights it learned there (`test_agnostic_aggregated`).
    pub test_agnostic: [Option<f64>; 11],
    /// Whether `test_agnostic` comes from the runs' test-time aggregation.
    pub test_agnostic_aggregated: bool,
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
            let coordinates: Vec<Coordinate> = point
                .grid_coordinates()
                .into_iter()
                .filter(|c| !c.is_seed())
                .collect();
            let index = match rows.iter().position(|(r, _)| r.coordinates == coordinates) {
                Some(i) => i,
                None => {
                    let row = ReportRow {
                        label: point_name(&experiment.name, &coordinates),
                        coordinates,
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
                row.older_engine |= !self.engine.trains(engine);
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
                group.add(summary);
            }
            if let Some((ce, own)) = point.references {
                group.a_v.extend(summary(find(ce)?).map(top1));
                group.a_b.extend(summary(find(own)?).map(top1));
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
            engine: self.engine.fingerprint(),
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
    test_agnostic: [Vec<f64>; 11],
    /// Top-1 after test-time aggregation, per shifted set, of the runs that have it.
    aggregated: [Vec<f64>; 11],
    /// Summaries added, and how many of them had a whole test-time aggregation.
    summaries: usize,
    with_aggregation: usize,
    a_v: Vec<f64>,
    a_b: Vec<f64>,
}

impl Group {
    fn add(&mut self, s: &RunSummary) {
        let last = &s.last;
        let wide = |x: Option<f32>| x.map(f64::from);
        self.top1.push(f64::from(last.test_top1));
        self.top5.extend(wide(last.test_top5));
        self.many.extend(wide(last.many));
        self.medium.extend(wide(last.medium));
        self.few.extend(wide(last.few));
        self.worst_class.extend(wide(last.worst_class));
        self.ece.extend(wide(last.ece));
        self.nll.extend(wide(last.nll));
        self.val_selected.extend(wide(s.val_selected_top1));
        self.best_test.push(f64::from(s.best_test_top1));
        self.images_per_sec.push(f64::from(s.images_per_sec));
        let per_class: Vec<Option<f64>> = last.per_class.iter().map(|a| wide(*a)).collect();
        for (values, accuracy) in self
            .test_agnostic
            .iter_mut()
            .zip(test_agnostic(&per_class, &s.class_counts))
        {
            values.extend(accuracy);
        }
        self.summaries += 1;
        let names = TEST_AGNOSTIC.map(|d| d.name());
        let by_set: Vec<Option<f64>> = names
            .iter()
            .map(|name| {
                s.test_time_aggregation
                    .iter()
                    .find(|a| a.distribution == *name)
                    .map(|a| f64::from(a.top1))
            })
            .collect();
        if by_set.iter().all(Option::is_some) {
            self.with_aggregation += 1;
            for (values, top1) in self.aggregated.iter_mut().zip(by_set) {
                values.extend(top1);
            }
        }
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
        // One basis for the whole row: the aggregation's scores when every run has them, else
        // the expectation of every run (a row mixing both would average unlike figures).
        row.test_agnostic_aggregated =
            self.summaries > 0 && self.with_aggregation == self.summaries;
        let source = if row.test_agnostic_aggregated {
            self.aggregated
        } else {
            self.test_agnostic
        };
        row.test_agnostic = source.map(|values| mean(&values));
        row.a_t = row.top1_mean;
        row.a_v = mean(&self.a_v);
        row.a_b = mean(&self.a_b);
        row.relative_accuracy = match (row.a_t, row.a_v, row.a_b) {
            (Some(t), Some(v), Some(b)) if v.max(b) > 0.0 => Some(t / v.max(b)),
            _ => None,
        };
    }
}

/// A succeeded run's summary.
fn summary(run: &RunRecord) -> Option<&RunSummary> {
    (run.state == RunState::Succeeded)
        .then_some(run.summary.as_deref())
        .flatten()
}

fn top1(summary: &RunSummary) -> f64 {
    f64::from(summary.last.test_top1)
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
    fn statistics() {
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[0.5, 0.7]), Some(0.6));
        // numpy: np.std([0.5, 0.7, 0.9], ddof=1) = 0.2
        assert!((std(&[0.5, 0.7, 0.9]).unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(std(&[0.5]), Some(0.0));
    }

    /// A summary of 3 classes; with `aggregated`, SADE's test-time aggregation on every
    /// shifted set, each set's top-1 `aggregated` plus its index / 100.
    fn summary(aggregated: Option<f32>) -> RunSummary {
        let mut s: RunSummary = serde_json::from_str(
            r#"{"method":"sade","class_counts":[100,10,1],"split_hash":"ab",
            "last":{"test_top1":0.5,"many":1.0,"medium":0.5,"few":0.0,"per_class":[1.0,0.5,0.0]},
            "best_test_top1":0.5,"val_selected_top1":null,"epochs":3,"images_per_sec":10.0}"#,
        )
        .unwrap();
        if let Some(base) = aggregated {
            s.test_time_aggregation = TEST_AGNOSTIC
                .iter()
                .enumerate()
                .map(|(i, d)| cauda_plugins::train::AggregatedDistribution {
                    distribution: d.name(),
                    weights: vec![0.5, 0.3, 0.2],
                    epochs: 5,
                    images: 30,
                    top1: base + i as f32 / 100.0,
                    mean_top1: base,
                    many: None,
                    medium: None,
                    few: None,
                })
                .collect();
        }
        s
    }

    fn row_of(summaries: &[RunSummary]) -> ReportRow {
        let mut group = Group::default();
        for s in summaries {
            group.add(s);
        }
        let mut row = ReportRow::default();
        group.finish(&mut row);
        row
    }

    #[test]
    fn a_row_shows_the_aggregations_scores_when_every_run_has_them() {
        let expected = row_of(&[summary(None)]);
        assert!(!expected.test_agnostic_aggregated);
        // Forward 50: the head class (accuracy 1) weighs most.
        assert!(expected.test_agnostic[0].unwrap() > 0.9);
        assert!((expected.test_agnostic[5].unwrap() - 0.5).abs() < 1e-12);

        let aggregated = row_of(&[summary(Some(0.6)), summary(Some(0.4))]);
        assert!(aggregated.test_agnostic_aggregated);
        for (i, v) in aggregated.test_agnostic.iter().enumerate() {
            let want = 0.5 + i as f64 / 100.0;
            assert!((v.unwrap() - want).abs() < 1e-6, "set {i}: {v:?}");
        }
        // A row where one run lacks it reports every run's expectation.
        let mixed = row_of(&[summary(Some(0.6)), summary(None)]);
        assert!(!mixed.test_agnostic_aggregated);
        assert_eq!(mixed.test_agnostic, expected.test_agnostic);
        // No run yet: nothing to report, and no aggregation claimed.
        let empty = row_of(&[]);
        assert!(!empty.test_agnostic_aggregated);
        assert_eq!(empty.test_agnostic, [None; 11]);
    }

    #[test]
    fn points_stored_before_coordinates_read_theirs_from_their_names() {
        let point = |name: &str| crate::model::PointRecord {
            name: name.into(),
            coordinates: Vec::new(),
            run: RunId(1),
            references: None,
        };
        let shown = |p: crate::model::PointRecord| {
            p.grid_coordinates()
                .iter()
                .map(Coordinate::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shown(point("x/data.imbalance.ratio=10,method=ce,train.seed=2")),
            ["data.imbalance.ratio=10", "method=ce", "train.seed=2"]
        );
        assert!(shown(point("x")).is_empty());
        let stored = crate::model::PointRecord {
            coordinates: vec![Coordinate {
                key: "method".into(),
                value: "a,b".into(),
            }],
            ..point("x/method=a,b")
        };
        assert_eq!(shown(stored), ["method=a,b"]);
    }
}
