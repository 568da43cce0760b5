//! The CIFAR ResNets of He et al. (2016, Sec. 4.2) used throughout the long-tailed literature
//! (ResNet-32 in LDAM-DRW, BBN, RIDE, Balanced Softmax, Logit Adjustment): a 3x3 stem of 16
//! maps, three stages of `n` basic blocks with 16/32/64 maps (stride 1/2/2), BatchNorm, global
//! average pool.
//!
//! Two variants differ in the down-sampling shortcut and the initialization:
//! * [`Shortcut::A`] is the field's network, as Cao et al.'s `models/resnet_cifar.py` builds it
//!   (kaidic/LDAM-DRW, reused by the papers above): a parameter-free shortcut that keeps every
//!   other row and column (`x[:, :, ::2, ::2]`) and zero-pads `planes / 4` channels on each side,
//!   and Kaiming-normal convolutions (`std = sqrt(2 / fan_in)`, `init.kaiming_normal_`).
//!   `resnet32` has 0.46M parameters, as in He et al.'s Table 6.
//! * [`Shortcut::B`] has 1x1-convolution + BatchNorm projection shortcuts and Burn's default
//!   initialization (cauda's earlier `resnet*`, now `resnet*b`).
//!
//! BatchNorm starts at weight 1, bias 0 in both. `bench/reference.py` builds the same networks.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};

use super::batch_norm::BatchNorm;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, s};

/// The kind of down-sampling shortcut (He et al. 2016, Sec. 3.3 options A and B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    /// Stride-2 subsampling and zero-padded channels, no parameters; Kaiming-normal init.
    A,
    /// 1x1 convolution + BatchNorm; Burn's default init.
    B,
}

/// `init.kaiming_normal_` with PyTorch's defaults (fan_in, gain `sqrt(2)` for ReLU).
pub fn kaiming_normal() -> Initializer {
    Initializer::KaimingNormal {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: false,
    }
}

pub(super) fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    sc: Shortcut,
    d: &Device,
) -> Conv2d {
    let pad = k / 2;
    let config = Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false);
    match sc {
        Shortcut::A => config.with_initializer(kaiming_normal()).init(d),
        Shortcut::B => config.init(d),
    }
}

/// A 1x1 projection shortcut (option B) used when a block changes resolution or width.
#[derive(Module, Debug)]
pub struct Projection {
    conv: Conv2d,
    bn: BatchNorm,
}

/// Two 3x3 conv-BN layers with an identity, option-A or option-B shortcut.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    /// Option B's projection, when the block changes shape.
    shortcut: Option<Projection>,
    /// Option A: zero channels added on each side by the parameter-free shortcut (0: identity,
    /// or option B).
    pad_channels: usize,
}

impl BasicBlock {
    pub(super) fn new(
        cin: usize,
        cout: usize,
        stride: usize,
        sc: Shortcut,
        device: &Device,
    ) -> Self {
        let changes = stride != 1 || cin != cout;
        let shortcut = (changes && sc == Shortcut::B).then(|| Projection {
            conv: conv(cin, cout, 1, stride, sc, device),
            bn: BatchNorm::new(cout, device),
        });
        Self {
            conv1: conv(cin, cout, 3, stride, sc, device),
            bn1: BatchNorm::new(cout, device),
            conv2: conv(cout, cout, 3, 1, sc, device),
            bn2: BatchNorm::new(cout, device),
            shortcut,
            // `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad))` with pad = (planes - in_planes)
            // / 2 (RIDE's and SADE's expert ResNets); Cao's `planes // 4` is the same where a
            // block doubles the width, as in every single-branch ResNet here.
            pad_channels: if changes && sc == Shortcut::A {
                (cout - cin) / 2
            } else {
                0
            },
        }
    }

    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward(self.conv1.forward(x.clone())));
        let out = self.bn2.forward(self.conv2.forward(out));
        let short = match &self.shortcut {
            Some(p) => p.bn.forward(p.conv.forward(x)),
            None if self.pad_channels > 0 => option_a(x, self.pad_channels),
            None => x,
        };
        relu(out + short)
    }
}

/// Option A's shortcut: `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0)`.
pub fn option_a(x: Tensor<4>, pad: usize) -> Tensor<4> {
    let sub = every_other_pixel(x);
    if pad == 0 {
        return sub;
    }
    let [n, _, h, w] = sub.dims();
    let zeros = Tensor::<4>::zeros([n, pad, h, w], &sub.device());
    Tensor::cat(vec![zeros.clone(), sub, zeros], 1)
}

/// `x[:, :, ::2, ::2]` without a strided slice: odd sides get a zero row/column, then each 2x2
/// cell keeps its top-left pixel (a reshape and unit-step slices). A strided slice's gradient
/// (a strided slice-assign) is not portable: burn-tch 0.22 builds it with per-element index
/// tensors and `view`s the incoming gradient, which fails when that gradient is a channel slice
/// of the concatenation below (CI's tch stage caught it); a unit-step slice-assign is a plain
/// `narrow` + `copy_` there and a block copy on flex.
fn every_other_pixel(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let x = if h % 2 == 1 {
        Tensor::cat(vec![x, Tensor::<4>::zeros([n, c, 1, w], &device)], 2)
    } else {
        x
    };
    let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
    let x = if w % 2 == 1 {
        Tensor::cat(vec![x, Tensor::<4>::zeros([n, c, 2 * h2, 1], &device)], 3)
    } else {
        x
    };
    x.reshape([n, c, h2, 2, w2, 2])
        .slice(s![.., .., .., 0..1, .., 0..1])
        .reshape([n, c, h2, w2])
}

/// CIFAR ResNet-(6n+2).
#[derive(Module, Debug)]
pub struct ResNet {
    stem: Conv2d,
    stem_bn: BatchNorm,
    blocks: Vec<BasicBlock>,
}

impl ResNet {
    /// Width of the pooled feature vector.
    pub const FEATURES: usize = 64;

    pub fn new(channels: usize, blocks_per_stage: usize, sc: Shortcut, device: &Device) -> Self {
        let mut blocks = Vec::with_capacity(3 * blocks_per_stage);
        let mut cin = 16;
        for (stage, cout) in [16, 32, 64].into_iter().enumerate() {
            for b in 0..blocks_per_stage {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(cin, cout, stride, sc, device));
                cin = cout;
            }
        }
        Self {
            stem: conv(channels, 16, 3, 1, sc, device),
            stem_bn: BatchNorm::new(16, device),
            blocks,
        }
    }

    /// The last stage's feature maps `[N, 64, H/4, W/4]`.
    pub fn maps(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = relu(self.stem_bn.forward(self.stem.forward(x)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        x
    }

    /// Features `[N, 64]`: global average pooling over H and W of [`ResNet::maps`].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x: Tensor<3> = self.maps(x).flatten(2, 3);
        x.mean_dim(2).flatten(1, 2)
    }
}

#[cfg(test)]
#[path = "resnet_tests.rs"]
mod tests;
