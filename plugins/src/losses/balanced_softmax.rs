//! Balanced softmax: corrects the softmax for the label shift between a long-tailed training set and a
//! balanced test set by adding the log class counts to the logits during training.

use burn::tensor::{Int, Tensor};

use super::Loss;
use super::class_stats::validate_counts;
use super::cross_entropy::{add_class_offsets, ce_per_sample};
use super::error::Result;

/// Balanced softmax (Ren et al., "Balanced Meta-Softmax for Long-Tailed Visual Recognition",
/// NeurIPS 2020):
///
/// `l(z, y) = -log( n_y exp(z_y) / sum_j n_j exp(z_j) ) = CE(z + log n, y)`.
///
/// At test time the raw logits `z` are used (no adjustment).
#[derive(Debug, Clone)]
pub struct BalancedSoftmax {
    log_counts: Vec<f32>,
}

impl BalancedSoftmax {
    /// Builds the offsets `log n_c` from the per-class training counts (all > 0).
    pub fn new(counts: &[usize]) -> Result<Self> {
        let counts = validate_counts("balanced_softmax", counts)?;
        Ok(Self {
            log_counts: counts.iter().map(|n| n.ln() as f32).collect(),
        })
    }
}

impl Loss for BalancedSoftmax {
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        ce_per_sample(add_class_offsets(logits, &self.log_counts), labels)
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.log_counts.len())
    }
}
