//! Focal loss: down-weights well-classified samples so the many easy head-class samples do not
//! dominate the gradient.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

use super::Loss;
use super::class_stats::check_param;
use super::error::Result;

/// Focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017), softmax form:
///
/// `l(z, y) = -(1 - p_y)^gamma log p_y`, `p = softmax(z)`.
///
/// `gamma = 0` is cross-entropy. `1 - p_y` is computed as `sum_{j != y} p_j`, which stays accurate
/// when `p_y` rounds to 1 (large logits); it is clamped at 1e-30 so `gamma < 1` keeps a finite gradient.
#[derive(Debug, Clone)]
pub struct Focal {
    gamma: f64,
}

impl Focal {
    /// The paper's best value.
    pub const DEFAULT_GAMMA: f64 = 2.0;

    /// Builds the loss; `gamma` must be finite and `>= 0`.
    pub fn new(gamma: f64) -> Result<Self> {
        Ok(Self {
            gamma: check_gamma("focal", gamma)?,
        })
    }

    /// The focusing parameter.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }
}

impl Loss for Focal {
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        focal_per_sample(logits, labels, self.gamma)
    }
}

/// Checks a focal `gamma`: finite and `>= 0`.
pub(crate) fn check_gamma(loss: &'static str, gamma: f64) -> Result<f64> {
    check_param(loss, "gamma", gamma, "gamma >= 0", |g| g >= 0.0)
}

/// Per-sample `-(1 - p_y)^gamma log p_y`, [N, C] x [N] -> [N].
pub(crate) fn focal_per_sample(logits: Tensor<2>, labels: Tensor<1, Int>, gamma: f64) -> Tensor<1> {
    let [n, c] = logits.dims();
    let log_p = log_softmax(logits, 1);
    let log_p_y = log_p
        .clone()
        .gather(1, labels.clone().reshape([n, 1]))
        .reshape([n]);
    if gamma == 0.0 {
        return log_p_y.neg();
    }
    let not_y = labels.one_hot_fill::<2>(c, 0.0, 1.0, -1).float();
    let one_minus_p_y = (log_p.exp() * not_y).sum_dim(1).reshape([n]);
    let modulator = one_minus_p_y.clamp_min(1e-30).powf_scalar(gamma);
    (modulator * log_p_y).neg()
}
