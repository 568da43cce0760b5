//! Evaluation of a long-tailed classifier from its predictions, in plain Rust (no tensors): top-1,
//! per-class and many/medium/few-shot accuracy, the confusion matrix, calibration (ECE, NLL, the
//! reliability diagram) and the worst class, SADE's test-agnostic accuracy, the per-epoch record, the survey's model-selection
//! variants and its relative accuracy.

mod calibration;
mod classwise;
mod confusion;
mod epoch;
mod shot_groups;
mod test_agnostic;

pub use calibration::{Calibration, ECE_BINS, ReliabilityBin, calibration, worst_class};
pub use classwise::{class_accuracy, top_k_accuracy};
pub use confusion::{ConfusionMatrix, argmax};
pub use epoch::{Selected, Selection, relative_accuracy};
pub use shot_groups::{GroupAccuracy, ShotThresholds, group_accuracy, group_accuracy_of};
pub use test_agnostic::{Shift, ShiftedTestSets, TEST_AGNOSTIC, TestDistribution, test_agnostic};

/// Errors of the metrics layer: mismatched lengths or out-of-range classes in the inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("{what}: expected {expected} values, got {got}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{what} {value} at position {index} is not below num_classes = {num_classes}")]
    ClassOutOfRange {
        what: &'static str,
        index: usize,
        value: u32,
        num_classes: usize,
    },
    #[error("num_classes must be at least 1")]
    NoClasses,
    #[error(
        "shot thresholds: few_below ({few_below}) must be at most many_above + 1 ({many_above} + 1)"
    )]
    Thresholds { many_above: usize, few_below: usize },
}

pub type Result<T> = std::result::Result<T, MetricsError>;

/// Everything one evaluation pass yields; see [`Evaluation::from_logits`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Top-1 accuracy over all test images (`None` for an empty test set).
    pub top1: Option<f32>,
    /// Accuracy of each class (`None` for a class without test images).
    pub per_class: Vec<Option<f32>>,
    /// Many/medium/few-shot accuracy with respect to the training counts.
    pub groups: GroupAccuracy,
    pub confusion: ConfusionMatrix,
}

impl Evaluation {
    /// Evaluates row-major `logits` (`labels.len() x num_classes`) against `labels`, grouping the
    /// classes by their training counts `train_counts` with `thresholds`.
    pub fn from_logits(
        logits: &[f32],
        labels: &[u32],
        num_classes: usize,
        train_counts: &[usize],
        thresholds: &ShotThresholds,
    ) -> Result<Self> {
        let preds = argmax(logits, num_classes)?;
        let confusion = ConfusionMatrix::from_predictions(&preds, labels, num_classes)?;
        let groups = group_accuracy(&confusion, train_counts, thresholds)?;
        Ok(Self {
            top1: confusion.top1(),
            per_class: confusion.per_class(),
            groups,
            confusion,
        })
    }
}

#[cfg(test)]
mod tests;
