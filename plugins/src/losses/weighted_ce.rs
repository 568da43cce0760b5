//! Inverse-frequency re-weighted cross-entropy, the simplest class re-weighting baseline of the survey.

use burn::tensor::{Int, Tensor};

use super::Loss;
use super::class_stats::{inverse_frequency_weights, validate_counts};
use super::cross_entropy::ce_per_sample;
use super::error::Result;

/// Cross-entropy re-weighted by inverse class frequency (survey Sec. 3.1.2, "re-weighting"):
///
/// `w_c = (1 / n_c) * C / sum_k (1 / n_k)` (so `sum_c w_c = C`), `l(z, y) = -log softmax(z)_y`,
/// applied by [`super::combine`] as the weighted mean `sum_i w_{y_i} l_i / sum_i w_{y_i}`.
#[derive(Debug, Clone)]
pub struct WeightedCe {
    weights: Vec<f32>,
}

impl WeightedCe {
    /// Builds the weights from the training set's per-class counts (all must be > 0).
    pub fn new(counts: &[usize]) -> Result<Self> {
        let counts = validate_counts("weighted_ce", counts)?;
        Ok(Self {
            weights: inverse_frequency_weights(&counts),
        })
    }
}

impl Loss for WeightedCe {
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        ce_per_sample(logits, labels)
    }

    fn class_weights(&self, _epoch: usize) -> Option<Vec<f32>> {
        Some(self.weights.clone())
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.weights.len())
    }
}
