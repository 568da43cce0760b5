//! Classifier heads: a linear layer, or a cosine classifier (normalized features and weights,
//! scaled by `s`), with an optional per-class scale vector for LWS and the post-hoc weight
//! transforms of decoupled learning (tau-normalization, MaxNorm projection).
//!
//! Weights are stored `[classes, features]` like PyTorch's `nn.Linear`, so exported checkpoints
//! need no transposition. A multi-expert head (RIDE, SADE: [`super::ExpertResNet`]) stacks its
//! experts' classifiers, `[experts x classes, features per expert]`; expert `e` reads the `e`-th
//! slice of the features, and the head's logits are the mean of its experts' logits.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

use super::ModelError;

/// Which head to build.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeadKind {
    /// `z = W f + b`.
    Linear,
    /// `z = s * cos(f, w_c)` (Gidaris & Komodakis 2018; LDAM uses it with `s` inside the loss,
    /// so there the head's `scale` is 1).
    Cosine { scale: f32 },
}

impl HeadKind {
    pub const NAMES: &'static [&'static str] = &["linear", "cosine"];
}

/// How a new head's weights are drawn; the backbone decides ([`super::BackboneKind::head_init`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadInit {
    /// PyTorch's `nn.Linear` default: weight and bias `U(-1/sqrt(d), 1/sqrt(d))`.
    Torch,
    /// Cao et al.'s `_weights_init` (kaidic/LDAM-DRW `models/resnet_cifar.py`): a linear head's
    /// weight `N(0, 2/d)` (`init.kaiming_normal_`), its bias PyTorch's default; a cosine head's
    /// rows `U(-1, 1)` scaled to unit norm, as `NormedLinear`'s `uniform_(-1, 1).renorm_(2, 1,
    /// 1e-5).mul_(1e5)`.
    KaimingNormal,
}

/// A classifier head.
#[derive(Module, Debug)]
pub struct Head {
    /// `[classes, features]`.
    pub weight: Param<Tensor<2>>,
    /// `[classes]`; absent for cosine heads and after tau-normalization.
    pub bias: Option<Param<Tensor<1>>>,
    /// LWS per-class scales `[classes]` (Kang et al. 2020): `z_c <- f_c z_c`.
    pub scales: Option<Param<Tensor<1>>>,
    /// DisAlign's class-wise magnitude `alpha` `[classes]` (cvpods `DisAlignLinear.logit_scale`).
    pub logit_scale: Option<Param<Tensor<1>>>,
    /// DisAlign's class-wise offset `beta` `[classes]` (`logit_bias`).
    pub logit_bias: Option<Param<Tensor<1>>>,
    /// DisAlign's instance confidence `sigmoid(v . x + b)`: `v` `[1, features]`
    /// (`confidence_layer.weight`) ...
    pub confidence_weight: Option<Param<Tensor<2>>>,
    /// ... and `b` `[1]` (`confidence_layer.bias`).
    pub confidence_bias: Option<Param<Tensor<1>>>,
    /// Cosine scale `s`; 0 means a linear head.
    pub cosine_scale: f32,
    /// How many experts' classifiers `weight` stacks (1: a plain head).
    pub experts: usize,
}

impl Head {
    /// A head with PyTorch's default initialization ([`HeadInit::Torch`]).
    pub fn new(
        kind: HeadKind,
        features: usize,
        classes: usize,
        device: &Device,
    ) -> Result<Self, ModelError> {
        Self::with_init(kind, HeadInit::Torch, features, classes, device)
    }

    pub fn with_init(
        kind: HeadKind,
        init: HeadInit,
        features: usize,
        classes: usize,
        device: &Device,
    ) -> Result<Self, ModelError> {
        Self::experts_with_init(kind, init, features, classes, 1, device)
    }

    /// A head of `experts` classifiers, each over its own `features`-wide slice of the
    /// features (each initialized as a single head would be).
    pub fn experts_with_init(
        kind: HeadKind,
        init: HeadInit,
        features: usize,
        classes: usize,
        experts: usize,
        device: &Device,
    ) -> Result<Self, ModelError> {
        if experts == 0 {
            return Err(ModelError::Invalid {
                key: "experts",
                message: "a head needs at least one expert".into(),
            });
        }
        // PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
        let bound = 1.0 / (features as f64).sqrt();
        let uniform = Distribution::Uniform(-bound, bound);
        let classes = experts * classes;
        let shape = [classes, features];
        let weight = match (init, kind) {
            (HeadInit::Torch, _) => Tensor::random(shape, uniform, device),
            (HeadInit::KaimingNormal, HeadKind::Linear) => {
                let std = (2.0 / features as f64).sqrt();
                Tensor::random(shape, Distribution::Normal(0.0, std), device)
            }
            (HeadInit::KaimingNormal, HeadKind::Cosine { .. }) => l2_normalize_rows(
                Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device),
            ),
        };
        let weight = Param::from_tensor(weight);
        Ok(match kind {
            HeadKind::Linear => Self {
                weight,
                bias: Some(Param::from_tensor(Tensor::random(
                    [classes],
                    uniform,
                    device,
                ))),
                scales: None,
                logit_scale: None,
                logit_bias: None,
                confidence_weight: None,
                confidence_bias: None,
                cosine_scale: 0.0,
                experts,
            },
            HeadKind::Cosine { scale } => {
                if !(scale > 0.0 && scale.is_finite()) {
                    return Err(ModelError::Invalid {
                        key: "head_scale",
                        message: format!("the cosine scale must be > 0, got {scale}"),
                    });
                }
                Self {
                    weight,
                    bias: None,
                    scales: None,
                    logit_scale: None,
                    logit_bias: None,
                    confidence_weight: None,
                    confidence_bias: None,
                    cosine_scale: scale,
                    experts,
                }
            }
        })
    }

    pub fn classes(&self) -> usize {
        self.weight.dims()[0] / self.experts.max(1)
    }

    /// Logits `[N, classes]`: the mean of the experts' logits when there are several.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        match self.expert_logits(features.clone()) {
            Some(z) => z.mean_dim(0).squeeze_dim(0),
            None => self.single(features),
        }
    }

    /// BBN's two branches' logits through this head over `[f_c, f_r]`: the conventional
    /// branch's `W 2 [f_c, 0] + b` and the re-balancing branch's `W 2 [0, f_r] + b`, so that
    /// `alpha z_c + (1 - alpha) z_r = W 2 [alpha f_c, (1 - alpha) f_r] + b`, BBN's `bbn_mix`
    /// output (`losses::Bbn`), for any `alpha`. Exact for a linear head (with LWS scales too);
    /// the bilateral classifier builds one.
    pub fn bilateral_logits(&self, f_c: Tensor<2>, f_r: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let zeros_c = f_c.zeros_like();
        let zeros_r = f_r.zeros_like();
        let main = Tensor::cat(vec![f_c.mul_scalar(2.0), zeros_r], 1);
        let other = Tensor::cat(vec![zeros_c, f_r.mul_scalar(2.0)], 1);
        (self.forward(main), self.forward(other))
    }

    /// Each expert's logits `[experts, N, classes]` (None for a single head): expert `e`'s
    /// classifier on the `e`-th slice of the features, as RIDE's `_separate_part` computes
    /// `linears[e](feat_e) * s`.
    pub fn expert_logits(&self, features: Tensor<2>) -> Option<Tensor<3>> {
        let e = self.experts;
        if e <= 1 {
            return None;
        }
        let [n, width] = features.dims();
        let [rows, d] = self.weight.dims();
        let c = rows / e;
        debug_assert_eq!(width, e * d, "features of {e} experts of {d}");
        let f: Tensor<3> = features.reshape([n, e, d]).swap_dims(0, 1);
        let w: Tensor<3> = self.weight.val().reshape([e, c, d]);
        let mut z = if self.cosine_scale > 0.0 {
            l2_normalize_last(f)
                .matmul(l2_normalize_last(w).swap_dims(1, 2))
                .mul_scalar(self.cosine_scale)
        } else {
            f.matmul(w.swap_dims(1, 2))
        };
        if let Some(b) = &self.bias {
            z = z + b.val().reshape([e, 1, c]);
        }
        if let Some(s) = &self.scales {
            z = z * s.val().reshape([1, 1, c]);
        }
        Some(z)
    }

    fn single(&self, features: Tensor<2>) -> Tensor<2> {
        // DisAlign's confidence reads the features too (only a calibrated head keeps them).
        let calibrating = self.confidence_weight.is_some().then(|| features.clone());
        let w = self.weight.val();
        let mut z = if self.cosine_scale > 0.0 {
            let f = l2_normalize_rows(features);
            let w = l2_normalize_rows(w);
            f.matmul(w.transpose()).mul_scalar(self.cosine_scale)
        } else {
            features.matmul(w.transpose())
        };
        if let Some(b) = &self.bias {
            z = z + b.val().unsqueeze_dim(0);
        }
        if let Some(s) = &self.scales {
            z = z * s.val().unsqueeze_dim(0);
        }
        match calibrating {
            Some(features) => self.disalign(features, z),
            None => z,
        }
    }

    /// DisAlign's adaptive calibration (Zhang et al., "Distribution Alignment: A Unified
    /// Framework for Long-tail Visual Recognition", CVPR 2021; cvpods `DisAlignLinear` and
    /// `DisAlignNormalizedLinear`): `z' = (1 + sigma alpha) z + sigma beta` with the instance
    /// confidence `sigma = sigmoid(v . x + b)`, `x` the features (L2-normalized for a cosine
    /// head, as `feat_norm`). The code's form of the paper's `sigma (alpha z + beta) + (1 -
    /// sigma) z` (its `alpha` is the paper's minus 1). `z` unchanged without it.
    fn disalign(&self, features: Tensor<2>, z: Tensor<2>) -> Tensor<2> {
        let (Some(alpha), Some(beta), Some(v), Some(b)) = (
            &self.logit_scale,
            &self.logit_bias,
            &self.confidence_weight,
            &self.confidence_bias,
        ) else {
            return z;
        };
        let x = if self.cosine_scale > 0.0 {
            l2_normalize_rows(features)
        } else {
            features
        };
        let sigma = burn::tensor::activation::sigmoid(
            x.matmul(v.val().transpose()) + b.val().unsqueeze_dim(0),
        );
        let scaled = sigma.clone() * alpha.val().unsqueeze_dim(0);
        z.clone() + scaled * z + sigma * beta.val().unsqueeze_dim(0)
    }

    /// Adds DisAlign's calibration, learnable, as the code initializes it: `alpha = 1`,
    /// `beta = 0`, `v = 0.1`, `b ~ U(-1/sqrt(d), 1/sqrt(d))` (`nn.Linear`'s default bias).
    /// Refused for a head of several experts.
    pub fn with_disalign(mut self, device: &Device) -> Result<Self, ModelError> {
        if self.experts > 1 {
            return Err(ModelError::Invalid {
                key: "stage2",
                message: "DisAlign calibrates one classifier, not a head of several experts".into(),
            });
        }
        let [classes, d] = self.weight.dims();
        let bound = 1.0 / (d as f64).sqrt();
        self.logit_scale = Some(Param::from_tensor(Tensor::ones([classes], device)));
        self.logit_bias = Some(Param::from_tensor(Tensor::zeros([classes], device)));
        self.confidence_weight = Some(Param::from_tensor(Tensor::full([1, d], 0.1, device)));
        self.confidence_bias = Some(Param::from_tensor(Tensor::random(
            [1],
            Distribution::Uniform(-bound, bound),
            device,
        )));
        Ok(self)
    }

    /// Adds LWS scales initialized to 1 (learnable).
    pub fn with_lws_scales(mut self, device: &Device) -> Self {
        let classes = self.classes();
        self.scales = Some(Param::from_tensor(Tensor::ones([classes], device)));
        self
    }

    /// Tau-normalization (Kang et al. ICLR 2020): `w_c <- w_c / ||w_c||^tau`, bias dropped as in
    /// the paper, which ignores biases in the classifier.
    pub fn tau_normalized(&self, tau: f32) -> Self {
        let w = self.weight.val();
        let norms = w.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
        let w = (w / norms.powf_scalar(tau)).detach();
        Self {
            weight: Param::from_tensor(w),
            bias: None,
            scales: self.scales.clone(),
            logit_scale: self.logit_scale.clone(),
            logit_bias: self.logit_bias.clone(),
            confidence_weight: self.confidence_weight.clone(),
            confidence_bias: self.confidence_bias.clone(),
            cosine_scale: self.cosine_scale,
            experts: self.experts,
        }
    }

    /// MaxNorm projection (Alshammari et al. CVPR 2022, weight balancing): every class weight
    /// row is projected into the ball of radius `threshold`: `w_c <- w_c * min(1, t / ||w_c||)`.
    /// Weight balancing's relative MaxNorm radius (Alshammari et al.'s `MaxNorm_via_PGD`):
    /// `min_c ||w_c|| + thresh (max_c ||w_c|| - min_c ||w_c||)` over the rows of the weight.
    pub fn relative_norm_threshold(&self, thresh: f32) -> f32 {
        let norms: Vec<f32> = self
            .weight
            .val()
            .powi_scalar(2)
            .sum_dim(1)
            .sqrt()
            .into_data()
            .iter::<f32>()
            .collect();
        let min = norms.iter().copied().fold(f32::INFINITY, f32::min);
        let max = norms.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        min + thresh * (max - min)
    }

    pub fn max_norm(self, threshold: f32) -> Self {
        let Self {
            weight,
            bias,
            scales,
            logit_scale,
            logit_bias,
            confidence_weight,
            confidence_bias,
            cosine_scale,
            experts,
        } = self;
        let weight = weight.map(|w| {
            let norms = w.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
            let factor = norms.recip().mul_scalar(threshold).clamp_max(1.0);
            let trainable = w.is_require_grad();
            let projected = (w * factor).detach();
            if trainable {
                projected.require_grad()
            } else {
                projected
            }
        });
        Self {
            weight,
            bias,
            scales,
            logit_scale,
            logit_bias,
            confidence_weight,
            confidence_bias,
            cosine_scale,
            experts,
        }
    }
}

/// `x / max(||x||, 1e-12)` row-wise, as `F.normalize(x, dim=1)`.
pub fn l2_normalize_rows(x: Tensor<2>) -> Tensor<2> {
    let norms = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norms
}

/// [`l2_normalize_rows`] along the last axis of `[E, rows, D]`.
fn l2_normalize_last(x: Tensor<3>) -> Tensor<3> {
    let norms = x.clone().powi_scalar(2).sum_dim(2).sqrt().clamp_min(1e-12);
    x / norms
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn head_from(weight: Vec<f32>, classes: usize, features: usize) -> Head {
        let device = Device::default();
        let w = Tensor::<2>::from_data(TensorData::new(weight, [classes, features]), &device);
        Head {
            weight: Param::from_tensor(w),
            bias: None,
            scales: None,
            logit_scale: None,
            logit_bias: None,
            confidence_weight: None,
            confidence_bias: None,
            cosine_scale: 0.0,
            experts: 1,
        }
    }

    #[test]
    fn tau_norm_divides_each_row_by_its_norm_to_the_tau() {
        // rows with norms 5 and 1: tau = 1 gives unit rows, tau = 0.5 divides by sqrt(5) and 1.
        let h = head_from(vec![3.0, 4.0, 0.0, 1.0], 2, 2);
        let w1: Vec<f32> = h
            .tau_normalized(1.0)
            .weight
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert!((w1[0] - 0.6).abs() < 1e-6 && (w1[1] - 0.8).abs() < 1e-6);
        let w: Vec<f32> = h
            .tau_normalized(0.5)
            .weight
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let s5 = 5f32.sqrt();
        assert!((w[0] - 3.0 / s5).abs() < 1e-5 && (w[1] - 4.0 / s5).abs() < 1e-5);
        assert!((w[3] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn max_norm_only_shrinks_rows_longer_than_the_threshold() {
        let h = head_from(vec![3.0, 4.0, 0.0, 1.0], 2, 2).max_norm(2.0);
        let w: Vec<f32> = h.weight.val().into_data().try_into_vec::<f32>().unwrap();
        assert!((w[0] - 1.2).abs() < 1e-6 && (w[1] - 1.6).abs() < 1e-6);
        assert!((w[3] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn cosine_head_outputs_scaled_cosines() {
        let device = Device::default();
        let mut h = head_from(vec![1.0, 0.0, 0.0, 2.0], 2, 2);
        h.cosine_scale = 10.0;
        let f = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 3.0], [1, 2]), &device);
        let z: Vec<f32> = h.forward(f).into_data().try_into_vec::<f32>().unwrap();
        let c = std::f32::consts::FRAC_1_SQRT_2 * 10.0;
        assert!((z[0] - c).abs() < 1e-4 && (z[1] - c).abs() < 1e-4, "{z:?}");
    }
}
