//! Logit-adjusted loss: trains with the label prior added to the logits so the learned logits estimate
//! the balanced (prior-free) posterior.

use burn::tensor::{Int, Tensor};

use super::Loss;
use super::class_stats::{check_param, log_prior_of, validate_counts};
use super::cross_entropy::{add_class_offsets, ce_per_sample};
use super::error::Result;

/// Logit-adjusted softmax cross-entropy (Menon et al., "Long-Tail Learning via Logit Adjustment",
/// ICLR 2021, Eq. 10):
///
/// `l(z, y) = -log( exp(z_y + tau log pi_y) / sum_j exp(z_j + tau log pi_j) ) = CE(z + tau log pi, y)`,
/// `pi_c = n_c / sum_k n_k`. With `tau = 1` it equals [`super::BalancedSoftmax`] up to a constant shift of
/// all logits (same values and gradients). The raw logits are used at test time.
#[derive(Debug, Clone)]
pub struct LogitAdjusted {
    tau: f64,
    offsets: Vec<f32>,
}

impl LogitAdjusted {
    /// The paper's default temperature.
    pub const DEFAULT_TAU: f64 = 1.0;

    /// Builds the offsets `tau log pi_c` from the per-class training counts (all > 0); `tau >= 0`.
    pub fn new(counts: &[usize], tau: f64) -> Result<Self> {
        const NAME: &str = "logit_adjusted";
        let counts = validate_counts(NAME, counts)?;
        let tau = check_param(NAME, "tau", tau, "tau >= 0", |t| t >= 0.0)?;
        let offsets = log_prior_of(&counts)
            .iter()
            .map(|&lp| (tau * f64::from(lp)) as f32)
            .collect();
        Ok(Self { tau, offsets })
    }

    /// The temperature `tau`.
    pub fn tau(&self) -> f64 {
        self.tau
    }
}

impl Loss for LogitAdjusted {
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        ce_per_sample(add_class_offsets(logits, &self.offsets), labels)
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.offsets.len())
    }
}
