//! What a run reports: one record per epoch (printed as a JSON line by `caudad train`, streamed
//! to the daemon by workers) and a final summary with the model-selection numbers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Metrics of one epoch. Epochs are numbered across stages (stage 2 continues after stage 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub stage: u8,
    /// Numbered from 1, contiguously over the stages of a run.
    pub epoch: usize,
    pub train_loss: f32,
    pub lr: f64,
    pub images_per_sec: f32,
    /// Test metrics, present on evaluation epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<EvalRecord>,
    /// Further scalar metrics by name: what a program run as a command reports beside the
    /// standard ones (docs/COMMAND_RUNS.md). The engine reports none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, f64>,
}

/// Accuracy of one evaluation (fractions in [0, 1]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    pub test_top1: f32,
    pub many: Option<f32>,
    pub medium: Option<f32>,
    pub few: Option<f32>,
    /// Per-class test accuracy, `null` for a class without test images.
    pub per_class: Vec<Option<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_top1: Option<f32>,
    /// Top-5 accuracy on the test set (with more than 5 classes): the large benchmarks report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_top5: Option<f32>,
    /// Expected calibration error on the test set (15 bins; `metrics::calibration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ece: Option<f32>,
    /// Mean negative log-likelihood of the test labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nll: Option<f32>,
    /// The lowest per-class test accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_class: Option<f32>,
    /// The reliability diagram's bins (count, accuracy, mean confidence), lowest confidence first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reliability: Vec<crate::metrics::ReliabilityBin>,
}

/// The outcome of a finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub method: String,
    pub class_counts: Vec<usize>,
    pub split_hash: String,
    /// Metrics of the final model.
    pub last: EvalRecord,
    /// Best test top-1 over evaluations: optimistic, reported and marked as such.
    pub best_test_top1: f32,
    /// Test top-1 at the evaluation with the best validation top-1 (when there is a validation split).
    pub val_selected_top1: Option<f32>,
    /// Tau-normalization: test (and validation) top-1 per tau, and the tau used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau_sweep: Option<TauSweep>,
    pub epochs: usize,
    pub images_per_sec: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TauSweep {
    pub taus: Vec<f32>,
    pub test_top1: Vec<f32>,
    pub val_top1: Option<Vec<f32>>,
    pub chosen: f32,
}
