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

/// Accuracy of one evaluation (fractions in [0, 1]); `Default` is an empty one, for building
/// records field by field.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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
    /// The final model's test confusion matrix: the predictions `last` is scored on. `None`
    /// above [`MAX_CONFUSION_CLASSES`] classes, for command runs (no logits), and in summaries
    /// stored before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confusion: Option<ConfusionRecord>,
    /// SADE's test-time self-supervised aggregation (`evaluation.test_time_aggregation`), one
    /// entry per shifted test set in `metrics::TEST_AGNOSTIC`'s order; empty for other runs and
    /// in summaries stored before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_time_aggregation: Vec<AggregatedDistribution>,
}

/// The outcome of SADE's test-time aggregation on one shifted test set: the experts' weights
/// learned on its unlabeled images, and top-1 on those images with them and, for comparison,
/// with the experts' mean (the fixed model's prediction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregatedDistribution {
    /// The test distribution, as `TestDistribution::name` writes it (`forward-50`, `uniform`).
    pub distribution: String,
    /// The learned weights `softmax(w)`, one per expert, summing to 1.
    pub weights: Vec<f32>,
    /// Epochs trained (fewer than configured when a weight fell below `min_weight`).
    pub epochs: usize,
    /// Test images in the shifted set.
    pub images: usize,
    /// Top-1 on the shifted set with the learned weights.
    pub top1: f32,
    /// Top-1 on the same images with the experts' mean.
    pub mean_top1: f32,
    /// Many/medium/few-shot top-1 on the shifted set with the learned weights (the classes of
    /// each group that keep test images).
    pub many: Option<f32>,
    pub medium: Option<f32>,
    pub few: Option<f32>,
}

/// The most classes whose confusion matrix a summary carries: ImageNet-LT's 1000 (a million
/// counts, about 2 MB of JSON). iNaturalist 2018's 8,142 classes would be 66 million counts
/// (530 MB), in every summary stored, sent and listed.
pub const MAX_CONFUSION_CLASSES: usize = 1000;

/// A confusion matrix as a summary stores it: `counts[true_class * classes + predicted_class]`,
/// classes in label order (rows are the true class, columns the predicted class).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionRecord {
    pub classes: usize,
    /// Row-major, `classes * classes` counts.
    pub counts: Vec<u64>,
}

impl ConfusionRecord {
    /// The record of `matrix`, `None` when it has more than [`MAX_CONFUSION_CLASSES`] classes.
    pub fn bounded(matrix: &crate::metrics::ConfusionMatrix) -> Option<Self> {
        (matrix.num_classes() <= MAX_CONFUSION_CLASSES).then(|| Self {
            classes: matrix.num_classes(),
            counts: matrix.counts().to_vec(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TauSweep {
    pub taus: Vec<f32>,
    pub test_top1: Vec<f32>,
    pub val_top1: Option<Vec<f32>>,
    pub chosen: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A summary as engines before the confusion matrix stored it.
    const OLD_SUMMARY: &str = r#"{"method":"ce","class_counts":[50,5],"split_hash":"ab",
        "last":{"test_top1":0.75,"many":null,"medium":null,"few":0.5,"per_class":[1.0,0.5]},
        "best_test_top1":0.8,"val_selected_top1":null,"epochs":3,"images_per_sec":100.0}"#;

    #[test]
    fn a_summary_stored_before_the_confusion_matrix_still_decodes() {
        let old: RunSummary = serde_json::from_str(OLD_SUMMARY).unwrap();
        assert_eq!(old.confusion, None);
        assert_eq!(old.last.test_top1, 0.75);
        // Without a matrix, the field is left out: the same JSON as before.
        let text = serde_json::to_string(&old).unwrap();
        assert!(!text.contains("confusion"), "{text}");
    }

    #[test]
    fn a_summary_without_aggregation_writes_none_and_one_with_it_round_trips() {
        let mut summary: RunSummary = serde_json::from_str(OLD_SUMMARY).unwrap();
        assert!(summary.test_time_aggregation.is_empty());
        let text = serde_json::to_string(&summary).unwrap();
        assert!(!text.contains("test_time_aggregation"), "{text}");
        summary.test_time_aggregation = vec![AggregatedDistribution {
            distribution: "forward-50".into(),
            weights: vec![0.5, 0.3, 0.2],
            epochs: 5,
            images: 120,
            top1: 0.9,
            mean_top1: 0.85,
            many: Some(0.95),
            medium: None,
            few: Some(0.4),
        }];
        let text = serde_json::to_string(&summary).unwrap();
        let back: RunSummary = serde_json::from_str(&text).unwrap();
        assert_eq!(back, summary);
    }

    #[test]
    fn a_summary_with_its_confusion_matrix_round_trips() {
        let mut summary: RunSummary = serde_json::from_str(OLD_SUMMARY).unwrap();
        summary.confusion = Some(ConfusionRecord {
            classes: 2,
            counts: vec![4, 0, 1, 1],
        });
        let text = serde_json::to_string(&summary).unwrap();
        assert!(
            text.contains(r#""confusion":{"classes":2,"counts":[4,0,1,1]}"#),
            "{text}"
        );
        let back: RunSummary = serde_json::from_str(&text).unwrap();
        assert_eq!(back, summary);
    }

    #[test]
    fn a_matrix_is_kept_up_to_the_bound() {
        let small = crate::metrics::ConfusionMatrix::from_predictions(&[1, 0], &[0, 0], 2).unwrap();
        assert_eq!(
            ConfusionRecord::bounded(&small),
            Some(ConfusionRecord {
                classes: 2,
                counts: vec![1, 1, 0, 0],
            })
        );
        let large = crate::metrics::ConfusionMatrix::new(MAX_CONFUSION_CLASSES + 1);
        assert_eq!(ConfusionRecord::bounded(&large), None);
    }
}
