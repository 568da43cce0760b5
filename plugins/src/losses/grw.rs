//! Generalized re-weighting: inverse class frequency raised to a power, the loss DisAlign's
//! calibration is trained with (and a class-sensitive loss of its own).

use burn::tensor::{Int, Tensor};

use super::Loss;
use super::class_stats::{check_param, validate_counts};
use super::cross_entropy::ce_per_sample;
use super::error::Result;

/// Generalized re-weighting (Zhang et al., "Distribution Alignment: A Unified Framework for
/// Long-tail Visual Recognition", CVPR 2021, Sec. 3.3; cvpods `GRWCrossEntropyLoss`):
///
/// `w_c = (1 / r_c)^rho * C / sum_k (1 / r_k)^rho`, `r_c = n_c / sum_k n_k`, and
/// `l(z, y) = CE(z, y)`, reduced by [`super::combine`] as `F.cross_entropy(weight=w)`:
/// `sum_i w_{y_i} l_i / sum_i w_{y_i}`. `rho = 0` is plain CE, `rho = 1` inverse frequency.
/// The paper writes it as a KL to the re-weighted reference distribution `w_c y`; with one
/// label per image that is this weighted CE, which is what the code trains.
#[derive(Debug, Clone)]
pub struct GeneralizedReweight {
    weights: Vec<f32>,
}

impl GeneralizedReweight {
    /// The ImageNet-LT config's `GRW_SCALE`.
    pub const DEFAULT_RHO: f64 = 1.2;

    /// From the per-class training counts (all > 0) and `rho >= 0`.
    pub fn new(counts: &[usize], rho: f64) -> Result<Self> {
        const NAME: &str = "grw";
        let counts = validate_counts(NAME, counts)?;
        let rho = check_param(NAME, "rho", rho, "rho >= 0", |r| r >= 0.0)?;
        let total: f64 = counts.iter().sum();
        let raw: Vec<f64> = counts.iter().map(|&n| (total / n).powf(rho)).collect();
        let sum: f64 = raw.iter().sum();
        let c = counts.len() as f64;
        Ok(Self {
            weights: raw.iter().map(|&w| (w * c / sum) as f32).collect(),
        })
    }

    /// `w_c` per class (sum C).
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }
}

impl Loss for GeneralizedReweight {
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
