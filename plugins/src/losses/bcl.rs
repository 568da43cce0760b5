//! Balanced contrastive learning (Zhu et al., "Balanced Contrastive Learning for Long-Tailed
//! Visual Recognition", CVPR 2022): a logit-adjusted cross-entropy on the classification view
//! plus a supervised contrastive loss over two augmented views and the class centers, which
//! averages each negative class's share (class-averaging) and puts every class in every batch
//! (class-complement). It needs the model's embeddings and centers (`Step::embeddings`,
//! `Step::centers`), which the `contrastive` classifier builds.

use burn::tensor::{Int, Tensor, TensorData};

use super::class_stats::{check_param, log_prior_of, validate_counts};
use super::cross_entropy::{add_class_offsets, ce_per_sample};
use super::error::{LossError, Result};
use super::{Loss, Step};

const NAME: &str = "bcl";

/// BCL's training loss (reference code FlamieZhu/Balanced-Contrastive-Learning: `LogitAdjust`
/// and `BalSCL`, weighted as `main.py` weighs them):
///
/// `L = alpha CE(z + tau log pi, y) + beta L_BCL`,
///
/// with `z` the classification view's logits and, over the `A = V N` embeddings `v_a` of the
/// `V` augmented views (unit norm) and the `C` class centers `c_k` (unit norm), `M = A + C`
/// columns `u_j` with labels `t_j` (the images' labels, then `0..C`):
///
/// `L_BCL = -1/A sum_a 1/|P(a)| sum_{p in P(a)} log( exp(v_a u_p / T) /
///           sum_{j != a} exp(v_a u_j / T) / (n'_{t_j} - [t_j = t_a]) )`,
///
/// `P(a) = {j != a : t_j = t_a}` (the other views of the class and its center), and
/// `n'_k = V n_k + 1` the class's count among the columns (its views in the batch plus its
/// center): each class's terms in the denominator are averaged (the anchor's own class without
/// the anchor).
///
/// Defaults: the paper's CIFAR-LT setting (Sec. 5.1: `alpha` 2, `beta` 0.6, `T` 0.1; the
/// reference's `main.py` defaults 1, 0.35 and 0.07 are ImageNet-LT's); `tau` 1 as `LogitAdjust`.
/// A mixed batch is refused: the reference trains with one label per image.
#[derive(Debug, Clone)]
pub struct Bcl {
    alpha: f64,
    beta: f64,
    temperature: f64,
    offsets: Vec<f32>,
}

/// BCL's parameters as the registry reads them.
#[derive(Debug, Clone, Copy)]
pub struct BclParams {
    pub alpha: f64,
    pub beta: f64,
    pub temperature: f64,
    pub tau: f64,
}

impl BclParams {
    /// The paper's CIFAR-LT setting.
    pub const CIFAR: Self = Self {
        alpha: 2.0,
        beta: 0.6,
        temperature: 0.1,
        tau: 1.0,
    };
}

impl Bcl {
    /// From the per-class training counts (all > 0).
    pub fn new(counts: &[usize], p: BclParams) -> Result<Self> {
        let n = validate_counts(NAME, counts)?;
        let weight = |name, v| {
            check_param(NAME, name, v, "0 <= w <= 100", |w| {
                (0.0..=100.0).contains(&w)
            })
        };
        let alpha = weight("alpha", p.alpha)?;
        let beta = weight("beta", p.beta)?;
        let temperature = check_param(NAME, "temperature", p.temperature, "0 < T <= 10", |t| {
            t > 0.0 && t <= 10.0
        })?;
        let tau = check_param(NAME, "tau", p.tau, "0 <= tau <= 10", |t| {
            (0.0..=10.0).contains(&t)
        })?;
        let offsets = log_prior_of(&n)
            .iter()
            .map(|&lp| (tau * f64::from(lp)) as f32)
            .collect();
        Ok(Self {
            alpha,
            beta,
            temperature,
            offsets,
        })
    }

    fn batch_loss(&self, step: &Step) -> Result<Tensor<1>> {
        let c = self.offsets.len();
        let [n, classes] = step.logits.dims();
        if classes != c {
            return Err(LossError::ClassMismatch {
                what: "the loss' class counts",
                expected: classes,
                got: c,
            });
        }
        if step.mix.is_some() {
            return Err(LossError::Unsupported {
                loss: NAME,
                message: "it contrasts images of one label each: remove `augment.batch` \
                          (mixup/cutmix/remix)",
            });
        }
        let (Some(e), Some(centers)) = (&step.embeddings, &step.centers) else {
            return Err(LossError::Unsupported {
                loss: NAME,
                message: "it needs the embeddings of augmented views and the class centers: \
                          add `[module] classifier = { name = \"contrastive\" }`",
            });
        };
        let [v, en, p] = e.dims();
        if v < 2 || en != n {
            return Err(LossError::BatchMismatch {
                what: "the augmented views' embeddings",
                expected: 2 * n,
                got: v.saturating_sub(1) * en,
            });
        }
        if centers.dims() != [c, p] {
            return Err(LossError::ClassMismatch {
                what: "the class centers",
                expected: c,
                got: centers.dims()[0],
            });
        }
        let views = e.clone().narrow(0, 1, v - 1).reshape([(v - 1) * n, p]);
        let ce = ce_per_sample(
            add_class_offsets(step.logits.clone(), &self.offsets),
            step.labels.clone(),
        )
        .mean();
        let scl = balanced_contrast(
            views,
            centers.clone(),
            step.labels.clone(),
            self.temperature,
        );
        Ok(ce.mul_scalar(self.alpha) + scl.mul_scalar(self.beta))
    }
}

/// `L_BCL` of [`Bcl`] (`BalSCL.forward`) for the anchors `[V N, P]` (view by view, as
/// `torch.cat(torch.unbind(features, 1))` orders them), the centers `[C, P]` and the labels
/// `[N]`. The masks are built on the device from the labels' one-hot rows, so nothing waits
/// for the labels on the host.
pub(crate) fn balanced_contrast(
    anchors: Tensor<2>,
    centers: Tensor<2>,
    labels: Tensor<1, Int>,
    temperature: f64,
) -> Tensor<1> {
    let device = anchors.device();
    let [a, _] = anchors.dims();
    let [c, _] = centers.dims();
    let n = labels.dims()[0];
    let m = a + c;
    let onehot = labels.one_hot::<2>(c).float();
    let rows = Tensor::cat(vec![onehot; a / n.max(1)], 0);
    let eye: Vec<f32> = (0..c * c)
        .map(|i| f32::from(u8::from(i / c == i % c)))
        .collect();
    let cols = Tensor::cat(
        vec![
            rows.clone(),
            Tensor::<2>::from_data(TensorData::new(eye, [c, c]), &device),
        ],
        0,
    );
    let others: Vec<f32> = (0..a * m)
        .map(|i| f32::from(u8::from(i / m != i % m)))
        .collect();
    let others = Tensor::<2>::from_data(TensorData::new(others, [a, m]), &device);
    // Same class, not the anchor itself.
    let positive = rows.clone().matmul(cols.clone().transpose()) * others.clone();
    // Each class's count among the columns: its views in the batch and its center.
    let count = rows.sum_dim(0).add_scalar(1.0);
    let per_column = cols.matmul(count.transpose()).reshape([1, m]);
    let share = per_column - positive.clone();
    let all = Tensor::cat(vec![anchors.clone(), centers], 0);
    let s = anchors.matmul(all.transpose()).div_scalar(temperature);
    let s = s.clone() - s.max_dim(1).detach();
    let denominator = (s.clone().exp() * others / share).sum_dim(1);
    let log_prob = s - denominator.log();
    let mean_positive = (positive.clone() * log_prob).sum_dim(1) / positive.sum_dim(1);
    mean_positive.mean().neg()
}

impl Loss for Bcl {
    /// Without embeddings, the logit-adjusted term alone (`alpha` CE(z + tau log pi)).
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        ce_per_sample(add_class_offsets(logits, &self.offsets), labels).mul_scalar(self.alpha)
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.offsets.len())
    }

    fn whole_batch(&self, step: &Step) -> Option<Result<Tensor<1>>> {
        Some(self.batch_loss(step))
    }
}
