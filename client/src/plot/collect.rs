//! From the daemon's runs to a [`PlotData`], without the network: which runs count (succeeded,
//! not a balanced reference run), how they group (imbalance ratio -> panel, method -> line) and
//! how seeds are averaged. Everything is read from the runs' typed fields (`method`,
//! `imbalance_ratio`, `balanced_reference`, the typed `summary`): the client never links the
//! engine and never reads its JSON.

use std::collections::BTreeMap;

use cauda_proto::v1::{EpochMetrics, Run, RunState};

use super::{ConfusionPlot, Heatmap, Panel, PlotData, PlotError, Series, XAxis};

/// What a run contributes to a plot, read from its JSON fields.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    /// The method (preset) name.
    pub method: String,
    /// `data.imbalance.ratio`; `None` for a run without imbalance.
    pub ratio: Option<f64>,
    /// Training images per class (from the summary; empty when it has none).
    pub class_counts: Vec<f64>,
    /// Final test accuracy per class; `None` for a class without test images.
    pub per_class: Vec<Option<f64>>,
}

/// The facts of a run that belongs in a plot: `None` when it did not succeed, is a balanced
/// reference run, or has no summary (a run listed without `RUN_VIEW_FULL`).
pub fn run_facts(run: &Run) -> Option<RunFacts> {
    if run.state() != RunState::Succeeded || run.balanced_reference {
        return None;
    }
    let summary = run.summary.as_ref()?;
    let method = if run.method.is_empty() {
        summary.method.clone()
    } else {
        run.method.clone()
    };
    Some(RunFacts {
        method,
        ratio: run.imbalance_ratio,
        class_counts: summary.class_counts.iter().map(|&c| c as f64).collect(),
        per_class: summary.last.as_ref().map_or_else(Vec::new, |last| {
            cauda_proto::per_class_from_wire(&last.per_class)
                .into_iter()
                .map(|a| a.map(f64::from))
                .collect()
        }),
    })
}

/// The runs of one method in one panel, with what each carries besides its facts.
type MethodRuns<T> = (String, Vec<(RunFacts, T)>);
/// The methods of one panel (one imbalance ratio).
type RatioGroup<T> = (Option<f64>, Vec<MethodRuns<T>>);

/// Groups items by ratio (ascending, "no imbalance" first) then method (first-seen order).
fn group<T>(items: Vec<(RunFacts, T)>) -> Vec<RatioGroup<T>> {
    let mut panels: Vec<RatioGroup<T>> = Vec::new();
    for (facts, extra) in items {
        let ratio = facts.ratio;
        let at = match panels.iter().position(|(r, _)| *r == ratio) {
            Some(i) => i,
            None => {
                panels.push((ratio, Vec::new()));
                panels.len() - 1
            }
        };
        let methods = &mut panels[at].1;
        match methods.iter_mut().find(|(m, _)| *m == facts.method) {
            Some((_, runs)) => runs.push((facts, extra)),
            None => methods.push((facts.method.clone(), vec![(facts, extra)])),
        }
    }
    panels.sort_by(|a, b| {
        a.0.unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&b.0.unwrap_or(f64::NEG_INFINITY))
    });
    panels
}

fn panel_title(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) => format!("imbalance ratio {r}"),
        None => "no imbalance".to_string(),
    }
}

/// One panel per ratio of `items`, one line per method, each line made by `line` from the
/// method's runs; an empty `items` is nothing to plot, for `why`.
fn panels<T>(
    items: Vec<(RunFacts, T)>,
    why: String,
    line: impl Fn(String, Vec<(RunFacts, T)>) -> Series,
) -> Result<Vec<Panel>, PlotError> {
    if items.is_empty() {
        return Err(PlotError::Empty(why));
    }
    Ok(group(items)
        .into_iter()
        .map(|(ratio, methods)| Panel {
            title: panel_title(ratio),
            series: methods
                .into_iter()
                .map(|(method, runs)| line(method, runs))
                .collect(),
        })
        .collect())
}

/// Why a plot of `title` has no run to draw.
fn no_run(title: &str) -> String {
    format!("{title}: no succeeded run (balanced reference runs are not plotted)")
}

/// The per-class picture: per method, each class's final test accuracy (mean over seeds)
/// against its training count, head classes first.
pub fn per_class(title: &str, runs: &[Run]) -> Result<PlotData, PlotError> {
    let facts: Vec<(RunFacts, ())> = runs.iter().filter_map(run_facts).map(|f| (f, ())).collect();
    let panels = panels(facts, no_run(title), |method, runs| Series {
        method,
        runs: runs.len(),
        points: mean_per_class(runs.iter().map(|(f, ())| f)),
    })?;
    Ok(PlotData {
        title: format!("{title} — per-class test accuracy of the final model (mean over seeds)"),
        x_axis: XAxis::ClassCountDescending,
        y_label: "test accuracy of the class (%)".into(),
        panels,
    })
}

/// Per class: (mean training count, mean accuracy) over the runs that measured it, sorted by
/// count, largest first. Classes no run measured are left out.
fn mean_per_class<'a>(runs: impl Iterator<Item = &'a RunFacts>) -> Vec<(f64, f64)> {
    // class -> (sum of counts, sum of accuracies, runs)
    let mut sums: BTreeMap<usize, (f64, f64, u32)> = BTreeMap::new();
    for run in runs {
        for (class, acc) in run.per_class.iter().enumerate() {
            let count = run.class_counts.get(class).copied().unwrap_or(f64::NAN);
            if let Some(acc) = acc.filter(|a| a.is_finite())
                && count.is_finite()
            {
                let entry = sums.entry(class).or_insert((0.0, 0.0, 0));
                *entry = (entry.0 + count, entry.1 + acc, entry.2 + 1);
            }
        }
    }
    let mut points: Vec<(f64, f64)> = sums
        .into_values()
        .map(|(c, a, n)| (c / f64::from(n), a / f64::from(n)))
        .collect();
    points.sort_by(|a, b| b.0.total_cmp(&a.0));
    points
}

/// The curves: per method, test top-1 at each evaluated epoch (mean over the seeds that
/// evaluated it).
pub fn curves(title: &str, runs: &[(Run, Vec<EpochMetrics>)]) -> Result<PlotData, PlotError> {
    let facts: Vec<(RunFacts, &[EpochMetrics])> = runs
        .iter()
        .filter_map(|(run, epochs)| run_facts(run).map(|f| (f, epochs.as_slice())))
        .collect();
    let panels = panels(facts, no_run(title), |method, runs| {
        let mut by_epoch: BTreeMap<u32, (f64, u32)> = BTreeMap::new();
        for epoch in runs.iter().flat_map(|(_, epochs)| epochs.iter()) {
            let top1 = epoch.eval.as_ref().map(|e| f64::from(e.test_top1));
            if let Some(top1) = top1.filter(|v| v.is_finite()) {
                let entry = by_epoch.entry(epoch.epoch).or_insert((0.0, 0));
                *entry = (entry.0 + top1, entry.1 + 1);
            }
        }
        Series {
            method,
            runs: runs.len(),
            points: by_epoch
                .into_iter()
                .map(|(e, (sum, n))| (f64::from(e), sum / f64::from(n)))
                .collect(),
        }
    })?;
    Ok(PlotData {
        title: format!("{title} — test top-1 by epoch (mean over seeds)"),
        x_axis: XAxis::Epoch,
        y_label: "test top-1 (%)".into(),
        panels,
    })
}

/// One reliability bin: (count, accuracy, mean confidence).
type Bin = (f64, f64, f64);

/// The reliability diagram: per method, each confidence bin's accuracy against its mean
/// confidence, the bins of the final evaluation pooled over seeds (weighted by their counts).
/// Runs without bins (command runs, engines before calibration) are left out.
pub fn calibration(title: &str, runs: &[Run]) -> Result<PlotData, PlotError> {
    let facts: Vec<(RunFacts, Vec<Bin>)> = runs
        .iter()
        .filter_map(|run| {
            let facts = run_facts(run)?;
            let last = run.summary.as_ref()?.last.as_ref()?;
            let bins: Vec<Bin> = last
                .reliability
                .iter()
                .map(|b| (b.count as f64, b.accuracy, b.confidence))
                .collect();
            (!bins.is_empty()).then_some((facts, bins))
        })
        .collect();
    let why = format!("{title}: no succeeded run with calibration bins (command runs report none)");
    let panels = panels(facts, why, |method, runs| {
        // bin -> (count, count x accuracy, count x confidence)
        let mut pooled: BTreeMap<usize, Bin> = BTreeMap::new();
        for (b, &(n, acc, conf)) in runs.iter().flat_map(|(_, bins)| bins.iter().enumerate()) {
            if n > 0.0 && acc.is_finite() && conf.is_finite() {
                let e = pooled.entry(b).or_insert((0.0, 0.0, 0.0));
                *e = (e.0 + n, e.1 + n * acc, e.2 + n * conf);
            }
        }
        Series {
            method,
            runs: runs.len(),
            points: pooled
                .into_values()
                .map(|(n, acc, conf)| (conf / n, acc / n))
                .collect(),
        }
    })?;
    Ok(PlotData {
        title: format!("{title} — reliability of the final model (bins pooled over seeds)"),
        x_axis: XAxis::Confidence,
        y_label: "accuracy in the bin (%)".into(),
        panels,
    })
}

/// A run's confusion matrix from the wire as an untitled heatmap (its training counts kept when
/// there is one per class); `None` when it has none or its counts are not classes x classes.
fn matrix_of(run: &Run) -> Option<Heatmap> {
    let summary = run.summary.as_ref()?;
    let m = summary.confusion.as_ref()?;
    let classes = usize::try_from(m.classes).ok()?;
    if classes == 0 || classes.checked_mul(classes) != Some(m.counts.len()) {
        return None;
    }
    let train = &summary.class_counts;
    Some(Heatmap {
        title: String::new(),
        classes,
        counts: m.counts.clone(),
        train_counts: if train.len() == classes {
            train.clone()
        } else {
            Vec::new()
        },
    })
}

/// The confusion matrices: per imbalance ratio (one row) and method (one heatmap), the final
/// models' test counts summed over seeds (runs of another class count make a heatmap of their
/// own). Runs without a matrix (command runs, older engines, data sets of more than 1000
/// classes) are left out; none with one is nothing to plot.
pub fn confusion(title: &str, runs: &[Run]) -> Result<ConfusionPlot, PlotError> {
    let items: Vec<(RunFacts, Heatmap)> = runs
        .iter()
        .filter_map(|run| Some((run_facts(run)?, matrix_of(run)?)))
        .collect();
    if items.is_empty() {
        return Err(PlotError::Empty(format!(
            "{title}: no succeeded run with a confusion matrix (command runs, runs of engines \
             before it, and data sets of more than 1000 classes store none)"
        )));
    }
    let rows = group(items)
        .into_iter()
        .map(|(ratio, methods)| {
            let mut maps = Vec::new();
            for (method, runs) in methods {
                // Summed per class count, with the runs summed; the first run's train counts.
                let mut sums: Vec<(Heatmap, usize)> = Vec::new();
                for (_, map) in runs {
                    match sums.iter_mut().find(|(s, _)| s.classes == map.classes) {
                        Some((sum, n)) => {
                            for (total, c) in sum.counts.iter_mut().zip(&map.counts) {
                                *total = total.saturating_add(*c);
                            }
                            *n += 1;
                        }
                        None => sums.push((map, 1)),
                    }
                }
                maps.extend(sums.into_iter().map(|(map, n)| Heatmap {
                    title: format!("{method} ({n}), {}", panel_title(ratio)),
                    ..map
                }));
            }
            maps
        })
        .collect();
    Ok(ConfusionPlot {
        title: format!(
            "{title} — confusion matrix of the final model (test counts summed over seeds, rows \
             normalized)"
        ),
        rows,
    })
}

#[cfg(test)]
#[path = "collect_test.rs"]
mod tests;
