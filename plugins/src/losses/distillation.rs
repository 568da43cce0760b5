//! Knowledge distillation from a frozen teacher (Hinton, Vinyals & Dean, "Distilling the
//! Knowledge in a Neural Network", 2015), the transfer-learning term of the long-tailed
//! distillation methods (LFME, Xiang et al. ECCV 2020; DiVE, He et al. ICCV 2021; NCL, Li et al.
//! CVPR 2022):
//!
//! `L = (1 - alpha) L_task(z_s, y) + alpha T^2 (1/N) sum_i KL(softmax(z_t,i / T) || softmax(z_s,i / T))`
//!
//! `z_s` the student's logits, `z_t` the teacher's (no gradient), `L_task` the run's own loss
//! (CE, Balanced Softmax, ... with its class weights and mixup targets, reduced as always). The
//! KL term is PyTorch's `F.kl_div(log_softmax(z_s / T), softmax(z_t / T), reduction="batchmean")`
//! times `T^2`, as DiVE's `DiVEKLD` writes it (zhangyongshun/BagofTricks-LT, without its optional
//! power flattening of the teacher, `POWER_NORM = False` there by default); LFME's
//! `DistillationLoss` is the same KL up to its `scale` argument. The `T^2` keeps the gradient of
//! the soft term on the scale of the hard one as `T` changes (Hinton et al. Sec. 2).

use std::sync::Arc;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

use super::Loss;
use super::error::{LossError, Result};
use super::step::{Step, step_loss};

/// The distillation loss around a task loss.
#[derive(Debug, Clone)]
pub struct Distillation {
    task: Arc<dyn Loss>,
    alpha: f32,
    temperature: f32,
}

impl Distillation {
    /// `alpha` in `[0, 1]` weighs the soft term; `temperature` > 0 softens both distributions.
    pub fn new(task: Arc<dyn Loss>, alpha: f64, temperature: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&alpha) {
            return Err(LossError::InvalidParameter {
                loss: "kd",
                param: "alpha",
                value: alpha,
                allowed: "0 <= alpha <= 1",
            });
        }
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(LossError::InvalidParameter {
                loss: "kd",
                param: "temperature",
                value: temperature,
                allowed: "temperature > 0 (finite)",
            });
        }
        Ok(Self {
            task,
            alpha: alpha as f32,
            temperature: temperature as f32,
        })
    }

    /// `T^2 (1/N) sum_i KL(p_t,i || p_s,i)` at temperature T, `[1]`. Both log-probabilities come
    /// from `log_softmax`, so a teacher probability that underflows to 0 contributes 0 (as
    /// PyTorch's `kl_div`, which uses `xlogy`), never NaN.
    fn soft_term(&self, student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
        let [n, _] = student.dims();
        let t = self.temperature;
        let log_ps = log_softmax(student.div_scalar(t), 1);
        let log_pt = log_softmax(teacher.detach().div_scalar(t), 1);
        let kl = log_pt.clone().exp().mul(log_pt - log_ps).sum_dim(1);
        kl.reshape([n])
            .sum()
            .div_scalar(n.max(1) as f32)
            .mul_scalar(t * t)
    }
}

impl Loss for Distillation {
    /// The task loss' own per-sample value (the soft term needs the teacher: see `whole_batch`).
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        self.task.per_sample(logits, labels)
    }

    fn per_sample_drawn(
        &self,
        logits: Tensor<2>,
        labels: Tensor<1, Int>,
        draws: super::StepDraws,
        term: usize,
    ) -> Tensor<1> {
        self.task.per_sample_drawn(logits, labels, draws, term)
    }

    fn class_weights(&self, epoch: usize) -> Option<Vec<f32>> {
        self.task.class_weights(epoch)
    }

    fn num_classes(&self) -> Option<usize> {
        self.task.num_classes()
    }

    fn whole_batch(&self, step: &Step) -> Option<Result<Tensor<1>>> {
        let Some(teacher) = step.teacher.clone() else {
            return Some(Err(LossError::Unsupported {
                loss: "kd",
                message: "needs a teacher's logits: it is the loss of `module.stage2 = \"kd\"`, \
                          whose stage 2 distils the stage-1 model into a new one",
            }));
        };
        if teacher.dims() != step.logits.dims() {
            return Some(Err(LossError::BatchMismatch {
                what: "the teacher's logits",
                expected: step.logits.dims()[0] * step.logits.dims()[1],
                got: teacher.dims()[0] * teacher.dims()[1],
            }));
        }
        let soft = self.soft_term(step.logits.clone(), teacher);
        let task = Step {
            teacher: None,
            ..step.clone()
        };
        Some(step_loss(self.task.as_ref(), task).map(|hard| {
            hard.mul_scalar(1.0 - self.alpha)
                .add(soft.mul_scalar(self.alpha))
        }))
    }
}
