//! GCL: logit adjustment by Gaussian clouds. Each class' cosine logits are pushed down by a
//! random amount whose spread grows as the class gets rarer, so a tail class' decision region
//! must hold the whole cloud around its samples, not only the samples.

use burn::tensor::{Int, Tensor, TensorData};

use super::Loss;
use super::class_stats::{check_param, validate_counts};
use super::cross_entropy::ce_per_sample;
use super::draws::{StepDraws, normal_block};
use super::error::Result;

/// Gaussian Clouded Logit loss (Li et al., "Long-Tailed Visual Recognition via Gaussian Clouded
/// Logit Adjustment", CVPR 2022; reference code Keke921/GCLLoss, `losses.py` `GCLLoss`):
///
/// `a_c = log n_max - log n_c` (the cloud size; 0 for the largest class),
/// `eps_ic = clamp(N(0, 1/3), -1, 1)` drawn per sample, class and evaluation,
/// `u_ic = z_ic - noise_mul |eps_ic| a_c / max_k a_k - m [c = y_i]`,
/// `l_i = CE(s u_i, y_i)`, and with `gamma > 0` (the code's `train_cls`, its stage 2)
/// `l_i = (1 - exp(-CE))^gamma CE` with the factor treated as a constant (`p.detach()`).
///
/// Contract (as LDAM's): `z` are the *un-scaled* cosine logits of a normalized head
/// ([`Loss::wants_cosine_head`]); `s` is applied here; predictions use `argmax z` (the clouds and
/// margin are training-only). The noise comes from the step's key ([`super::StepDraws`]) instead
/// of PyTorch's global generator, each label of a mixed batch drawing its own (the reference's
/// `mixup_criterion` calls the loss once per label). Class weights (`weight`, e.g. DRW) are
/// applied by [`super::combine`] as a weighted mean of these terms; the reference's focal form
/// puts a weight inside the CE (`exp(-w CE)`), the same when, as in its scripts, there is none.
/// With all classes equally frequent the reference divides 0 by 0; here the clouds are 0 then.
#[derive(Debug, Clone)]
pub struct Gcl {
    /// `noise_mul a_c / max_k a_k` per class.
    cloud: Vec<f32>,
    m: f64,
    s: f64,
    gamma: f64,
}

impl Gcl {
    /// The CIFAR stage-1 script's values (`cifar_train_backbone.py`): no margin, s = 30, noise
    /// multiplier 0.5, plain CE.
    pub const DEFAULT_M: f64 = 0.0;
    pub const DEFAULT_S: f64 = 30.0;
    pub const DEFAULT_NOISE_MUL: f64 = 0.5;
    pub const DEFAULT_GAMMA: f64 = 0.0;

    /// From the per-class training counts (all > 0); `m >= 0`, `s > 0`, `noise_mul >= 0`,
    /// `gamma >= 0`.
    pub fn new(counts: &[usize], m: f64, s: f64, noise_mul: f64, gamma: f64) -> Result<Self> {
        const NAME: &str = "gcl";
        let counts = validate_counts(NAME, counts)?;
        let m = check_param(NAME, "m", m, "m >= 0", |m| m >= 0.0)?;
        let s = check_param(NAME, "s", s, "s > 0", |s| s > 0.0)?;
        let noise_mul = check_param(NAME, "noise_mul", noise_mul, "noise_mul >= 0", |v| v >= 0.0)?;
        let gamma = check_param(NAME, "gamma", gamma, "gamma >= 0", |g| g >= 0.0)?;
        let log_max = counts.iter().map(|n| n.ln()).fold(f64::MIN, f64::max);
        let a: Vec<f64> = counts.iter().map(|n| log_max - n.ln()).collect();
        let a_max = a.iter().copied().fold(0.0, f64::max);
        let cloud = a
            .iter()
            .map(|&a_c| {
                if a_max > 0.0 {
                    (noise_mul * a_c / a_max) as f32
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Self { cloud, m, s, gamma })
    }

    /// `noise_mul a_c / max_k a_k` per class: the largest shift a cloud can make.
    pub fn cloud(&self) -> &[f32] {
        &self.cloud
    }

    /// The loss for a given noise `|eps|` `[N, C]` (what [`Loss::per_sample_drawn`] draws).
    pub fn with_noise(
        &self,
        logits: Tensor<2>,
        labels: Tensor<1, Int>,
        abs_noise: Tensor<2>,
    ) -> Tensor<1> {
        let [_, c] = logits.dims();
        let device = logits.device();
        let cloud = Tensor::<1>::from_floats(self.cloud.as_slice(), &device).reshape([1, c]);
        let target = labels.clone().one_hot::<2>(c).float();
        let adjusted = logits - abs_noise * cloud - target.mul_scalar(self.m);
        let ce = ce_per_sample(adjusted.mul_scalar(self.s), labels);
        if self.gamma > 0.0 {
            let modulating = ce
                .clone()
                .detach()
                .neg()
                .exp()
                .neg()
                .add_scalar(1.0)
                .powf_scalar(self.gamma);
            modulating * ce
        } else {
            ce
        }
    }

    /// `|clamp(N(0, 1/3), -1, 1)|` for `rows x classes`, from `draws` and `term`.
    pub fn noise(draws: StepDraws, term: usize, rows: usize, classes: usize) -> Vec<f32> {
        normal_block(draws, term, rows, classes)
            .into_iter()
            .map(|g| (g / 3.0).clamp(-1.0, 1.0).abs() as f32)
            .collect()
    }
}

impl Loss for Gcl {
    /// With the default draws (key 0): outside a training step there is no step to key on.
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        self.per_sample_drawn(logits, labels, StepDraws::default(), 0)
    }

    fn per_sample_drawn(
        &self,
        logits: Tensor<2>,
        labels: Tensor<1, Int>,
        draws: StepDraws,
        term: usize,
    ) -> Tensor<1> {
        let [n, c] = logits.dims();
        let noise = Tensor::<2>::from_data(
            TensorData::new(Self::noise(draws, term, n, c), [n, c]),
            &logits.device(),
        );
        self.with_noise(logits, labels, noise)
    }

    fn wants_cosine_head(&self) -> bool {
        true
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.cloud.len())
    }
}
