//! LADE: trains with the label prior in the softmax (like balanced softmax) and, as a
//! regularizer, makes the logits estimate the log-likelihood ratio of each class by a per-class
//! Donsker-Varadhan estimate over the batch. The regularizer is a per-class aggregate, not a
//! mean of per-sample terms, so LADE is the first loss computed over the whole batch.

use burn::tensor::{Int, Tensor};

use super::class_stats::{check_param, validate_counts};
use super::cross_entropy::{add_class_offsets, ce_per_sample};
use super::error::{LossError, Result};
use super::{Loss, Step};

/// LADE loss (Hong et al., "Disentangling Label Distribution for Long-tailed Visual
/// Recognition", CVPR 2021, Eqs. 8-12; reference code hyperconnect/LADE `LADELoss` plus
/// `PriorCELoss`):
///
/// `L = CE(z + log pi, y) - alpha sum_c pi_c (T1_c - T2_c - lambda T2_c^2)` with, over a batch of
/// N images of which `N_c` have label c,
/// - `T1_c = sum_{i: y_i = c} z_ic / (N_c + 1e-8)`,
/// - `T2_c = log sum_i exp(z_ic - log(pi_c + 1e-9) + log(1/C + 1e-9)) - log N`,
///
/// `pi_c = n_c / sum_k n_k` (the training prior; the code's `cls_weight` is the same vector) and
/// `lambda` the ReMINE regularization. The raw logits are used at test time (a uniform target
/// prior). A mixed batch is refused: the per-class estimate needs one label per image.
#[derive(Debug, Clone)]
pub struct Lade {
    log_prior: Vec<f32>,
    /// `log(1/C + 1e-9) - log(pi_c + 1e-9)`.
    spread_shift: Vec<f32>,
    prior: Vec<f32>,
    alpha: f64,
    lambda: f64,
}

impl Lade {
    /// The reference code's defaults: the regularizer's weight and ReMINE's lambda.
    pub const DEFAULT_ALPHA: f64 = 0.1;
    pub const DEFAULT_LAMBDA: f64 = 0.1;

    /// From the per-class training counts (all > 0); `alpha >= 0`, `lambda >= 0`.
    pub fn new(counts: &[usize], alpha: f64, lambda: f64) -> Result<Self> {
        const NAME: &str = "lade";
        let counts = validate_counts(NAME, counts)?;
        let alpha = check_param(NAME, "alpha", alpha, "alpha >= 0", |a| a >= 0.0)?;
        let lambda = check_param(NAME, "lambda", lambda, "lambda >= 0", |l| l >= 0.0)?;
        let total: f64 = counts.iter().sum();
        let c = counts.len() as f64;
        let prior: Vec<f64> = counts.iter().map(|&n| n / total).collect();
        Ok(Self {
            log_prior: prior.iter().map(|&p| p.ln() as f32).collect(),
            spread_shift: prior
                .iter()
                .map(|&p| ((1.0 / c + 1e-9).ln() - (p + 1e-9).ln()) as f32)
                .collect(),
            prior: prior.iter().map(|&p| p as f32).collect(),
            alpha,
            lambda,
        })
    }

    /// The regularizer `-sum_c pi_c (T1_c - T2_c - lambda T2_c^2)` of a batch, shape `[1]`.
    pub fn regularizer(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        let [n, c] = logits.dims();
        let device = logits.device();
        let onehot = labels.one_hot::<2>(c).float();
        let per_class = onehot.clone().sum_dim(0).add_scalar(1e-8);
        let first = (logits.clone() * onehot).sum_dim(0) / per_class;
        let q = add_class_offsets(logits, &self.spread_shift);
        let m = q.clone().max_dim(0).detach();
        let lse = (q - m.clone()).exp().sum_dim(0).log() + m;
        let second = lse.sub_scalar((n as f64).ln());
        let estim = first - second.clone() - second.clone() * second.mul_scalar(self.lambda);
        let w = Tensor::<1>::from_floats(self.prior.as_slice(), &device).reshape([1, c]);
        (estim * w).sum().neg()
    }
}

impl Loss for Lade {
    /// The prior-corrected cross-entropy part alone (what a per-sample view of LADE can give).
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        ce_per_sample(add_class_offsets(logits, &self.log_prior), labels)
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.prior.len())
    }

    fn whole_batch(&self, step: &Step) -> Option<Result<Tensor<1>>> {
        if step.mix.is_some() {
            return Some(Err(LossError::Unsupported {
                loss: "lade",
                message: "its per-class estimate needs one label per image: remove \
                          `augment.batch` (mixup/cutmix/remix)",
            }));
        }
        let [n, c] = step.logits.dims();
        if step.labels.dims()[0] != n {
            return Some(Err(LossError::BatchMismatch {
                what: "labels",
                expected: n,
                got: step.labels.dims()[0],
            }));
        }
        if c != self.prior.len() {
            return Some(Err(LossError::ClassMismatch {
                what: "the loss' class counts",
                expected: c,
                got: self.prior.len(),
            }));
        }
        let ce = self
            .per_sample(step.logits.clone(), step.labels.clone())
            .mean();
        let reg = self.regularizer(step.logits.clone(), step.labels.clone());
        Some(Ok(ce + reg.mul_scalar(self.alpha)))
    }
}
