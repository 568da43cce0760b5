//! Softmax cross-entropy, the baseline every re-balancing loss is compared to, plus the two tensor
//! helpers the logit-adjusting losses build on (per-sample CE and per-class logit offsets).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

use super::Loss;
use super::error::Result;

/// Softmax cross-entropy: `l(z, y) = -log softmax(z)_y = -z_y + log sum_j exp(z_j)`.
///
/// Numerically stable: Burn's `log_softmax` subtracts the row maximum before exponentiating, so
/// logits of any magnitude give finite values and gradients `softmax(z) - e_y`.
#[derive(Debug, Clone, Default)]
pub struct CrossEntropy;

impl CrossEntropy {
    /// Builds the loss; it has no parameters and never fails.
    pub fn new() -> Result<Self> {
        Ok(Self)
    }
}

impl Loss for CrossEntropy {
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        ce_per_sample(logits, labels)
    }
}

/// Per-sample `-log softmax(z_i)_{y_i}`, [N, C] x [N] -> [N].
pub(crate) fn ce_per_sample(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    target_log_probs(logits, labels).neg()
}

/// Per-sample `log softmax(z_i)_{y_i}`, [N, C] x [N] -> [N].
pub(crate) fn target_log_probs(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    log_softmax(logits, 1)
        .gather(1, labels.reshape([n, 1]))
        .reshape([n])
}

/// `z_ic + offsets_c`: adds a constant per-class offset to every row (logit adjustment).
pub(crate) fn add_class_offsets(logits: Tensor<2>, offsets: &[f32]) -> Tensor<2> {
    let row = Tensor::<1>::from_floats(offsets, &logits.device()).reshape([1, offsets.len()]);
    logits + row
}
