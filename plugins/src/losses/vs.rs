//! Vector-scaling loss: a multiplicative (logit scaling) and an additive (logit adjustment)
//! correction of the logits per class, the two ways of re-margining a classifier under label
//! imbalance combined.

use burn::tensor::{Int, Tensor};

use super::Loss;
use super::class_stats::{check_param, log_prior_of, validate_counts};
use super::cross_entropy::{add_class_offsets, ce_per_sample};
use super::error::Result;

/// VS loss (Kini et al., "Label-Imbalanced and Group-Sensitive Classification under
/// Overparameterization", NeurIPS 2021, Eq. 6; reference code orparask/VS-Loss `VSLoss`):
///
/// `l(z, y) = CE(z / Delta + iota, y)`, `Delta_c = (n_max / n_c)^gamma` (the code's
/// `(1/n_c)^gamma / min_k (1/n_k)^gamma`, so the head class has 1 and tail classes shrink),
/// `iota_c = tau log pi_c`, `pi_c = n_c / sum_k n_k`. `gamma = 0` is the logit-adjusted loss;
/// `tau = 0` is CDT (Ye et al. 2020). The raw logits are used at test time.
#[derive(Debug, Clone)]
pub struct VectorScaling {
    inv_delta: Vec<f32>,
    iota: Vec<f32>,
}

impl VectorScaling {
    /// The reference code's defaults.
    pub const DEFAULT_GAMMA: f64 = 0.3;
    pub const DEFAULT_TAU: f64 = 1.0;

    /// From the per-class training counts (all > 0); `gamma >= 0`, `tau >= 0`.
    pub fn new(counts: &[usize], gamma: f64, tau: f64) -> Result<Self> {
        const NAME: &str = "vs";
        let counts = validate_counts(NAME, counts)?;
        let gamma = check_param(NAME, "gamma", gamma, "gamma >= 0", |g| g >= 0.0)?;
        let tau = check_param(NAME, "tau", tau, "tau >= 0", |t| t >= 0.0)?;
        let n_max = counts.iter().copied().fold(0.0, f64::max);
        let inv_delta = counts
            .iter()
            .map(|&n| (n / n_max).powf(gamma) as f32)
            .collect();
        let iota = log_prior_of(&counts)
            .iter()
            .map(|&lp| (tau * f64::from(lp)) as f32)
            .collect();
        Ok(Self { inv_delta, iota })
    }

    /// `1 / Delta_c` per class.
    pub fn inverse_delta(&self) -> &[f32] {
        &self.inv_delta
    }
}

impl Loss for VectorScaling {
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        let c = self.inv_delta.len();
        let scale =
            Tensor::<1>::from_floats(self.inv_delta.as_slice(), &logits.device()).reshape([1, c]);
        ce_per_sample(add_class_offsets(logits * scale, &self.iota), labels)
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.inv_delta.len())
    }
}
