//! BBN's cumulative learning loss (Zhou et al., "BBN: Bilateral-Branch Network with Cumulative
//! Learning for Long-Tailed Visual Recognition", CVPR 2020, Sec. 3.3; Megvii-Nanjing/BBN,
//! `lib/core/combiner.py` `bbn_mix`).
//!
//! The conventional branch sees the main batch `(x_c, y_c)` (instance-balanced), the
//! re-balancing branch a batch `(x_r, y_r)` of the second sampler stream (reversed). With the
//! adaptor `alpha = 1 - (T / T_max)^2` (`T` the 0-based epoch, `T_max` the stage's epochs: the
//! code's `1 - ((epoch - 1) / div_epoch) ** 2` with 1-based epochs), the mixed logits are
//!
//! `z = W 2 [alpha f_c, (1 - alpha) f_r] + b = alpha z_c + (1 - alpha) z_r`
//!
//! with `z_c = W 2 [f_c, 0] + b` and `z_r = W 2 [0, f_r] + b` the branches' logits the loop
//! gives the loss ([`Step::logits`] and [`super::SecondStream::logits`]), and the loss is
//!
//! `L = alpha CE(z, y_c) + (1 - alpha) CE(z, y_r)` (each CE a batch mean).
//!
//! At evaluation the model's output is the classifier on `[f_c, f_r]` of the same images,
//! `alpha = 1/2` in the formula above, as BBN's `forward` without a flag. (BBN's combiner takes
//! `div_epoch = 100` for 90 epochs and 200 for 180; here `T_max` is always the stage's epochs.)

use burn::tensor::Tensor;

use super::cross_entropy::ce_per_sample;
use super::error::{LossError, Result};
use super::{Loss, Step};

const NAME: &str = "bbn";

/// BBN's loss over the two branches' logits.
#[derive(Debug, Clone)]
pub struct Bbn {
    /// `T_max`: the epochs of the stage.
    epochs: usize,
}

impl Bbn {
    pub fn new(epochs: usize) -> Self {
        Self { epochs }
    }

    /// The cumulative learning adaptor `alpha = 1 - (epoch / epochs)^2` at 0-based `epoch`.
    pub fn alpha(&self, epoch: usize) -> f64 {
        let t = epoch as f64 / self.epochs.max(1) as f64;
        1.0 - t * t
    }

    fn loss(&self, step: &Step) -> Result<Tensor<1>> {
        if step.mix.is_some() {
            return Err(LossError::Unsupported {
                loss: NAME,
                message: "its branches learn from one label per image: remove `augment.batch` \
                          (mixup/cutmix/remix)",
            });
        }
        let Some(second) = &step.second else {
            return Err(LossError::Unsupported {
                loss: NAME,
                message: "it mixes the main batch with a second sampler stream's batch and the \
                          step has none: add `[rebalance] second_sampler = \"reversed\"`",
            });
        };
        let [n, c] = step.logits.dims();
        let [n2, c2] = second.logits.dims();
        if c2 != c {
            return Err(LossError::ClassMismatch {
                what: "the second stream's logits",
                expected: c,
                got: c2,
            });
        }
        if n2 != n || second.labels.dims()[0] != n {
            return Err(LossError::BatchMismatch {
                what: "the second stream's batch",
                expected: n,
                got: n2.min(second.labels.dims()[0]),
            });
        }
        let alpha = self.alpha(step.epoch);
        let z =
            step.logits.clone().mul_scalar(alpha) + second.logits.clone().mul_scalar(1.0 - alpha);
        let ce_c = ce_per_sample(z.clone(), step.labels.clone()).mean();
        let ce_r = ce_per_sample(z, second.labels.clone()).mean();
        Ok(ce_c.mul_scalar(alpha) + ce_r.mul_scalar(1.0 - alpha))
    }
}

impl Loss for Bbn {
    /// Plain CE of the model's logits: what a step without the second stream would take; BBN's
    /// own value is [`Loss::whole_batch`]'s.
    fn per_sample(
        &self,
        logits: Tensor<2>,
        labels: burn::tensor::Tensor<1, burn::tensor::Int>,
    ) -> Tensor<1> {
        ce_per_sample(logits, labels)
    }

    fn whole_batch(&self, step: &Step) -> Option<Result<Tensor<1>>> {
        Some(self.loss(step))
    }
}
