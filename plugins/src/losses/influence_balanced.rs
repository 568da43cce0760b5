//! Influence-balanced loss: after a plain warm-up, each sample's cross-entropy is divided by its
//! influence on the classifier, the L1 norm of the loss' gradient in the last layer's weights,
//! `||softmax(z) - e_y||_1 ||h||_1` (h = the backbone's features), so the few samples that would
//! pull the decision boundary hardest (the majority's hard ones, over-fit tail ones) count less.

use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor};

use super::class_stats::{check_param, inverse_frequency_weights, validate_counts};
use super::cross_entropy::ce_per_sample;
use super::error::{LossError, Result};
use super::{Loss, Step};

/// Influence-balanced loss (Park et al., "Influence-Balanced Loss for Imbalanced Visual
/// Classification", ICCV 2021, Eq. 7; reference code pseulki/IB-Loss `IBLoss` and its
/// `cifar_train.py`):
///
/// for epochs before `start_epoch`, plain cross-entropy; from it on,
/// `L = mean_i w_{y_i} CE(z_i, y_i) alpha / (||softmax(z_i) - e_{y_i}||_1 ||h_i||_1 + 1e-3)`,
/// `w_c ∝ 1/n_c` scaled to sum C (the script's `per_cls_weights`), `h_i` the sample's features.
/// As in the reference the influence is not detached: its gradient flows too.
#[derive(Debug, Clone)]
pub struct InfluenceBalanced {
    weights: Vec<f32>,
    alpha: f64,
    start_epoch: usize,
}

impl InfluenceBalanced {
    /// The reference `IBLoss`'s epsilon.
    pub const EPSILON: f64 = 1e-3;

    /// From the per-class training counts (all > 0); `alpha > 0`; IB from `start_epoch` (0-based).
    pub fn new(counts: &[usize], alpha: f64, start_epoch: usize) -> Result<Self> {
        const NAME: &str = "influence-balanced";
        let counts = validate_counts(NAME, counts)?;
        let alpha = check_param(NAME, "alpha", alpha, "alpha > 0", |a| a > 0.0)?;
        Ok(Self {
            weights: inverse_frequency_weights(&counts),
            alpha,
            start_epoch,
        })
    }

    /// The first epoch (0-based) with the influence-balanced loss.
    pub fn start_epoch(&self) -> usize {
        self.start_epoch
    }
}

impl Loss for InfluenceBalanced {
    /// Plain cross-entropy: the warm-up's loss, and what a per-sample view of IB can give.
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        ce_per_sample(logits, labels)
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.weights.len())
    }

    fn whole_batch(&self, step: &Step) -> Option<Result<Tensor<1>>> {
        if step.epoch < self.start_epoch {
            return None;
        }
        if step.mix.is_some() {
            return Some(Err(LossError::Unsupported {
                loss: "influence-balanced",
                message: "its influence needs one label per image: remove `augment.batch`",
            }));
        }
        let Some(features) = step.features.clone() else {
            return Some(Err(LossError::Unsupported {
                loss: "influence-balanced",
                message: "needs the backbone's features, which this training path does not give",
            }));
        };
        let [n, c] = step.logits.dims();
        if c != self.weights.len() {
            return Some(Err(LossError::ClassMismatch {
                what: "the loss' class counts",
                expected: c,
                got: self.weights.len(),
            }));
        }
        let got = step.labels.dims()[0];
        if got != n {
            return Some(Err(LossError::BatchMismatch {
                what: "labels",
                expected: n,
                got,
            }));
        }
        // As `combine` weights: the class weight of each sample's label, gathered on the device.
        let w = Tensor::<1>::from_floats(self.weights.as_slice(), &step.logits.device())
            .select(0, step.labels.clone());
        let onehot = step.labels.clone().one_hot::<2>(c).float();
        let grad_l1 = (softmax(step.logits.clone(), 1) - onehot)
            .abs()
            .sum_dim(1)
            .reshape([n]);
        let h_l1 = features.abs().sum_dim(1).reshape([n]);
        let ib = (grad_l1 * h_l1)
            .add_scalar(Self::EPSILON)
            .recip()
            .mul_scalar(self.alpha);
        let ce = ce_per_sample(step.logits.clone(), step.labels.clone());
        Some(Ok((w * ce * ib).mean()))
    }
}
