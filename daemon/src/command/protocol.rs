//! The reporting protocol of command runs, version 1 (docs/COMMAND_RUNS.md): one JSON object per
//! line on the file descriptor `CAUDA_REPORT_FD`. `epoch` lines become the engine's
//! [`EpochRecord`]s (many/medium/few computed here from per-class accuracy and class counts, as
//! for engine runs); `checkpoint` lines ask the worker to store the checkpoint directory. A line
//! that does not parse is an error naming its number, never a crash, and lines are bounded.

use std::collections::BTreeMap;

use cauda_plugins::metrics::{ShotThresholds, group_accuracy_of};
use cauda_plugins::train::{EpochRecord, EvalRecord, RunSummary};
use serde::{Deserialize, Serialize};

/// The protocol versions this caudad reads.
pub const VERSION: u32 = 1;
/// Longest report line (bytes, without its newline): per-class lists of iNaturalist's 8,142
/// classes fit many times over.
pub const MAX_LINE_BYTES: usize = 4 << 20;
/// Most classes, and most extra metrics, in one line.
pub const MAX_CLASSES: usize = 100_000;
pub const MAX_METRICS: usize = 64;

/// Whether a named scalar metric is within bounds: a name of 1 to 64 bytes and a finite value.
/// The one rule for a report line's `metrics` and a worker's `extra` (`grpc::epoch_wire`).
pub fn metric_ok(name: &str, value: f64) -> bool {
    !name.is_empty() && name.len() <= 64 && value.is_finite()
}

/// Why a report line was refused; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("report line {line}: {reason}")]
pub struct ReportError {
    pub line: usize,
    pub reason: String,
}

/// One line's message.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Epoch(Box<EpochRecord>),
    /// The program finished writing its checkpoint directory after `epoch`.
    Checkpoint {
        epoch: usize,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    v: u32,
    #[serde(rename = "type")]
    kind: String,
    epoch: usize,
    #[serde(default)]
    stage: Option<u8>,
    #[serde(default)]
    train_loss: Option<f64>,
    #[serde(default)]
    lr: Option<f64>,
    #[serde(default)]
    images_per_sec: Option<f64>,
    #[serde(default)]
    test_top1: Option<f64>,
    #[serde(default)]
    val_top1: Option<f64>,
    #[serde(default)]
    test_top5: Option<f64>,
    #[serde(default)]
    per_class: Option<Vec<Option<f64>>>,
    #[serde(default)]
    class_counts: Option<Vec<u64>>,
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
}

/// Reads a run's report lines in order, remembering its class counts (a program may send them
/// once) and what its summary needs. Its state travels in the run's checkpoints, so a resumed
/// run's summary still covers the epochs before the checkpoint.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reader {
    /// Lines read from this attempt's program (not stored).
    #[serde(skip)]
    lines: usize,
    class_counts: Option<Vec<usize>>,
    last_eval: Option<EvalRecord>,
    best_top1: Option<f32>,
    /// (validation top-1, test top-1) at the best validation so far.
    best_val: Option<(f32, f32)>,
    last_epoch: usize,
    images_per_sec: f32,
}

impl Reader {
    /// Parses the next line (its number is counted here).
    pub fn read(&mut self, text: &str) -> Result<Report, ReportError> {
        self.lines += 1;
        let line = self.lines;
        let err = |reason: String| ReportError { line, reason };
        if text.len() > MAX_LINE_BYTES {
            return Err(err(format!(
                "{} bytes; the limit is {MAX_LINE_BYTES}",
                text.len()
            )));
        }
        let l: Line = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        if l.v != VERSION {
            return Err(err(format!(
                "protocol version {} is not read by this caudad (it reads {VERSION})",
                l.v
            )));
        }
        if l.epoch == 0 {
            return Err(err("`epoch` counts from 1".into()));
        }
        match l.kind.as_str() {
            "checkpoint" => Ok(Report::Checkpoint { epoch: l.epoch }),
            "epoch" => self.epoch(l).map_err(err),
            other => Err(err(format!(
                "unknown type `{other}`; allowed: epoch, checkpoint"
            ))),
        }
    }

    fn epoch(&mut self, l: Line) -> Result<Report, String> {
        let finite = |name: &str, v: Option<f64>| match v {
            Some(x) if !x.is_finite() => Err(format!("`{name}` is not finite")),
            _ => Ok(v),
        };
        let fraction = |name: &str, v: Option<f64>| match finite(name, v)? {
            Some(x) if !(0.0..=1.0).contains(&x) => {
                Err(format!("`{name}` = {x} is not a fraction in [0, 1]"))
            }
            v => Ok(v),
        };
        let train_loss =
            finite("train_loss", l.train_loss)?.ok_or("an epoch line needs `train_loss`")?;
        let lr = finite("lr", l.lr)?.unwrap_or(0.0);
        let images_per_sec = finite("images_per_sec", l.images_per_sec)?.unwrap_or(0.0);
        let test_top1 = fraction("test_top1", l.test_top1)?;
        let val_top1 = fraction("val_top1", l.val_top1)?;
        let test_top5 = fraction("test_top5", l.test_top5)?;
        if let Some(counts) = l.class_counts {
            if counts.is_empty() || counts.len() > MAX_CLASSES {
                return Err(format!("`class_counts` needs 1 to {MAX_CLASSES} classes"));
            }
            self.class_counts = Some(counts.into_iter().map(|c| c as usize).collect());
        }
        if l.metrics.len() > MAX_METRICS {
            return Err(format!("at most {MAX_METRICS} `metrics`"));
        }
        for (name, value) in &l.metrics {
            if !metric_ok(name, *value) {
                return Err(format!(
                    "metric `{name}`: a name of 1 to 64 bytes and a finite value"
                ));
            }
        }
        let eval = match (test_top1, l.per_class) {
            (None, Some(_)) => return Err("`per_class` needs `test_top1` in the same line".into()),
            (None, None) => None,
            (Some(top1), per_class) => {
                let per_class = per_class.unwrap_or_default();
                if per_class.len() > MAX_CLASSES {
                    return Err(format!("`per_class` has more than {MAX_CLASSES} classes"));
                }
                for (c, a) in per_class.iter().enumerate() {
                    fraction(&format!("per_class[{c}]"), *a)?;
                }
                let groups = match &self.class_counts {
                    Some(counts) if !per_class.is_empty() => Some(
                        group_accuracy_of(&per_class, counts, &ShotThresholds::default())
                            .map_err(|e| format!("`per_class` against `class_counts`: {e}"))?,
                    ),
                    _ => None,
                };
                Some(EvalRecord {
                    test_top1: top1 as f32,
                    many: groups.and_then(|g| g.many),
                    medium: groups.and_then(|g| g.medium),
                    few: groups.and_then(|g| g.few),
                    per_class: per_class.iter().map(|a| a.map(|x| x as f32)).collect(),
                    val_top1: val_top1.map(|v| v as f32),
                    test_top5: test_top5.map(|v| v as f32),
                    // A program reports accuracies, not logits: no calibration.
                    ece: None,
                    nll: None,
                    worst_class: cauda_plugins::metrics::worst_class(&per_class).map(|w| w as f32),
                    reliability: Vec::new(),
                })
            }
        };
        if let Some(e) = &eval {
            self.best_top1 = Some(self.best_top1.map_or(e.test_top1, |b| b.max(e.test_top1)));
            if let Some(v) = e.val_top1
                && self.best_val.is_none_or(|(best, _)| v > best)
            {
                self.best_val = Some((v, e.test_top1));
            }
            self.last_eval = Some(e.clone());
        }
        self.last_epoch = self.last_epoch.max(l.epoch);
        self.images_per_sec = images_per_sec as f32;
        Ok(Report::Epoch(Box::new(EpochRecord {
            stage: l.stage.unwrap_or(1).max(1),
            epoch: l.epoch,
            train_loss: train_loss as f32,
            lr,
            images_per_sec: images_per_sec as f32,
            eval,
            extra: l.metrics,
        })))
    }

    /// The summary of a program that exited 0; an error says why it has none.
    pub fn summary(&self, method: &str) -> Result<RunSummary, String> {
        let last = self.last_eval.clone().ok_or(
            "the program exited 0 without reporting an evaluated epoch (an `epoch` line with \
             `test_top1`)",
        )?;
        Ok(RunSummary {
            method: method.to_string(),
            class_counts: self.class_counts.clone().unwrap_or_default(),
            split_hash: String::new(),
            best_test_top1: self.best_top1.unwrap_or(last.test_top1),
            val_selected_top1: self.best_val.map(|(_, t)| t),
            last,
            tau_sweep: None,
            epochs: self.last_epoch,
            images_per_sec: self.images_per_sec,
            // A program reports accuracies, not logits: no confusion matrix.
            confusion: None,
            // Nor experts' logits to aggregate.
            test_time_aggregation: Vec::new(),
        })
    }
}

#[cfg(test)]
#[path = "protocol_test.rs"]
mod tests;
