//! Class-balanced loss: re-weights by the inverse *effective number* of samples, which saturates for
//! head classes instead of growing linearly like inverse frequency.

use burn::tensor::{Int, Tensor};

use super::Loss;
use super::class_stats::{check_beta, effective_number_weights, validate_counts};
use super::cross_entropy::ce_per_sample;
use super::error::Result;
use super::focal::{check_gamma, focal_per_sample};

/// The per-sample loss that the class-balanced weights multiply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClassBalancedBase {
    /// Softmax cross-entropy.
    CrossEntropy,
    /// Softmax focal loss with focusing parameter `gamma >= 0`.
    Focal {
        /// The focusing parameter.
        gamma: f64,
    },
}

/// Class-balanced loss (Cui et al., "Class-Balanced Loss Based on Effective Number of Samples",
/// CVPR 2019):
///
/// `E_c = (1 - beta^{n_c}) / (1 - beta)`, `w_c = 1 / E_c = (1 - beta) / (1 - beta^{n_c})`, scaled so
/// `sum_c w_c = C`; the loss is `w_y l(z, y)` with `l` = CE or focal.
///
/// Difference from the reference code (richardaecn/class-balanced-loss): there the class weight is
/// multiplied into the (focal) loss of each sample and the batch sum is divided by the batch size. Here
/// `per_sample` is the unweighted `l` and [`super::combine`] multiplies `w_y` in, so the per-sample product
/// `w_y l(z, y)` is the same, but the batch is normalized by `sum_i w_{y_i}` (a weighted mean, as in
/// PyTorch's weighted `cross_entropy`) rather than by N: the gradient direction is identical and its
/// scale differs by the batch factor `N / sum_i w_{y_i}`. The reference focal variant is also the
/// sigmoid (one-vs-all) form; ours is the softmax focal of Lin et al.
#[derive(Debug, Clone)]
pub struct ClassBalanced {
    base: ClassBalancedBase,
    weights: Vec<f32>,
}

impl ClassBalanced {
    /// The paper's CIFAR default.
    pub const DEFAULT_BETA: f64 = 0.9999;

    /// Builds the weights from the per-class training counts (all > 0); `0 <= beta < 1`, and for a focal
    /// base `gamma >= 0`.
    pub fn new(counts: &[usize], beta: f64, base: ClassBalancedBase) -> Result<Self> {
        const NAME: &str = "class_balanced";
        let counts = validate_counts(NAME, counts)?;
        let beta = check_beta(NAME, beta)?;
        if let ClassBalancedBase::Focal { gamma } = base {
            check_gamma(NAME, gamma)?;
        }
        Ok(Self {
            base,
            weights: effective_number_weights(&counts, beta),
        })
    }
}

impl Loss for ClassBalanced {
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        match self.base {
            ClassBalancedBase::CrossEntropy => ce_per_sample(logits, labels),
            ClassBalancedBase::Focal { gamma } => focal_per_sample(logits, labels, gamma),
        }
    }

    fn class_weights(&self, _epoch: usize) -> Option<Vec<f32>> {
        Some(self.weights.clone())
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.weights.len())
    }
}
