//! The ImageNet ResNets of the large long-tailed benchmarks (ImageNet-LT, Places-LT, iNaturalist
//! 2018): torchvision's `ResNet` (He et al. 2016, "v1.5": the stride sits on the bottleneck's 3x3
//! convolution), with the same field names, so a torchvision `state_dict` maps one to one and an
//! export reads back in PyTorch (`backbone.layer1.0.downsample.0.weight`, ...).
//!
//! A 7x7/2 stem of 64 maps, BatchNorm, ReLU, 3x3/2 max pooling, four stages of 64/128/256/512
//! planes (stride 1/2/2/2), global average pooling. [`ImageNetArch`] names the four networks the
//! papers use: `resnet10` ([1,1,1,1] basic blocks: Liu et al.'s OLTR and Kang et al.'s
//! decoupling code for ImageNet-LT), `resnet18`, `resnet50` and `resnext50_32x4d` (Xie et al.
//! 2017: 32 groups of width 4 in the 3x3 convolutions). The average pool is global, so any input
//! size works (224x224 in the papers; tests use 32x32 and 64x64).
//!
//! Initialization as torchvision: every convolution `kaiming_normal_(mode="fan_out",
//! nonlinearity="relu")`, i.e. `N(0, 2 / (out_channels * k * k))` whatever the groups (Burn's own
//! fan-out divides by the groups, so the std is given explicitly), BatchNorm weight 1 and bias 0,
//! `zero_init_residual = False`. BatchNorm is cauda's PyTorch-exact one (`batch_norm.rs`).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::batch_norm::BatchNorm;

/// One of the ImageNet networks, by its torchvision name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageNetArch {
    ResNet10,
    ResNet18,
    ResNet50,
    ResNeXt50x32x4d,
}

impl ImageNetArch {
    pub const ALL: [Self; 4] = [
        Self::ResNet10,
        Self::ResNet18,
        Self::ResNet50,
        Self::ResNeXt50x32x4d,
    ];

    /// The spec (and torchvision) name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ResNet10 => "resnet10",
            Self::ResNet18 => "resnet18",
            Self::ResNet50 => "resnet50",
            Self::ResNeXt50x32x4d => "resnext50_32x4d",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Blocks per stage.
    fn layers(self) -> [usize; 4] {
        match self {
            Self::ResNet10 => [1, 1, 1, 1],
            Self::ResNet18 => [2, 2, 2, 2],
            Self::ResNet50 | Self::ResNeXt50x32x4d => [3, 4, 6, 3],
        }
    }

    /// `(groups, width_per_group)` of bottleneck networks; `None` for basic blocks.
    fn bottleneck(self) -> Option<(usize, usize)> {
        match self {
            Self::ResNet10 | Self::ResNet18 => None,
            Self::ResNet50 => Some((1, 64)),
            Self::ResNeXt50x32x4d => Some((32, 4)),
        }
    }

    /// Width of the pooled feature vector: 512 x the block's expansion (1 or 4).
    pub fn features(self) -> usize {
        if self.bottleneck().is_some() {
            2048
        } else {
            512
        }
    }
}

/// A bias-free `k x k` convolution with padding `k / 2`, torchvision's initialization.
fn conv(cin: usize, cout: usize, k: usize, stride: usize, groups: usize, d: &Device) -> Conv2d {
    let pad = k / 2;
    // kaiming_normal_(mode="fan_out"): fan_out = out_channels * k * k, gain sqrt(2).
    let std = (2.0 / (cout * k * k) as f64).sqrt();
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_groups(groups)
        .with_bias(false)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(d)
}

/// torchvision's `downsample`: `nn.Sequential(conv1x1(stride), BatchNorm2d)`, exported as
/// `downsample.0` and `downsample.1`.
#[derive(Module, Debug)]
pub struct Downsample {
    conv: Conv2d,
    bn: BatchNorm,
}

impl Downsample {
    fn when_needed(cin: usize, cout: usize, stride: usize, d: &Device) -> Option<Self> {
        (stride != 1 || cin != cout).then(|| Self {
            conv: conv(cin, cout, 1, stride, 1, d),
            bn: BatchNorm::new(cout, d),
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }
}

/// torchvision's `BasicBlock`: two 3x3 conv-BN layers (stride on the first).
#[derive(Module, Debug)]
pub struct Basic {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<Downsample>,
}

/// torchvision's `Bottleneck`: 1x1 to `width`, grouped 3x3 (stride here, v1.5), 1x1 to
/// `4 * planes`.
#[derive(Module, Debug)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    downsample: Option<Downsample>,
}

/// A residual block of either kind (the variant leaves no trace in parameter names). A network
/// holds one kind only, so the variants' size difference costs nothing.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Block {
    Basic(Basic),
    Bottleneck(Bottleneck),
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (out, downsample) = match self {
            Block::Basic(b) => {
                let out = relu(b.bn1.forward(b.conv1.forward(x.clone())));
                (b.bn2.forward(b.conv2.forward(out)), &b.downsample)
            }
            Block::Bottleneck(b) => {
                let out = relu(b.bn1.forward(b.conv1.forward(x.clone())));
                let out = relu(b.bn2.forward(b.conv2.forward(out)));
                (b.bn3.forward(b.conv3.forward(out)), &b.downsample)
            }
        };
        let identity = match downsample {
            Some(d) => d.forward(x),
            None => x,
        };
        relu(out + identity)
    }
}

/// torchvision's `ResNet` without its `fc` (cauda's head takes its place).
#[derive(Module, Debug)]
pub struct ImageNetResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    maxpool: MaxPool2d,
    layer1: Vec<Block>,
    layer2: Vec<Block>,
    layer3: Vec<Block>,
    layer4: Vec<Block>,
    /// Width of the feature vector ([`ImageNetArch::features`]).
    features: usize,
}

impl ImageNetResNet {
    pub fn new(arch: ImageNetArch, channels: usize, device: &Device) -> Self {
        let mut inplanes = 64;
        let mut stages = Vec::with_capacity(4);
        for (i, blocks) in arch.layers().into_iter().enumerate() {
            let planes = 64 << i;
            let mut stage = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let stride = if i > 0 && b == 0 { 2 } else { 1 };
                let (block, out) = match arch.bottleneck() {
                    None => (
                        Block::Basic(Basic {
                            conv1: conv(inplanes, planes, 3, stride, 1, device),
                            bn1: BatchNorm::new(planes, device),
                            conv2: conv(planes, planes, 3, 1, 1, device),
                            bn2: BatchNorm::new(planes, device),
                            downsample: Downsample::when_needed(inplanes, planes, stride, device),
                        }),
                        planes,
                    ),
                    Some((groups, base_width)) => {
                        // torchvision: width = int(planes * (base_width / 64.0)) * groups.
                        let width = planes * base_width / 64 * groups;
                        let out = 4 * planes;
                        (
                            Block::Bottleneck(Bottleneck {
                                conv1: conv(inplanes, width, 1, 1, 1, device),
                                bn1: BatchNorm::new(width, device),
                                conv2: conv(width, width, 3, stride, groups, device),
                                bn2: BatchNorm::new(width, device),
                                conv3: conv(width, out, 1, 1, 1, device),
                                bn3: BatchNorm::new(out, device),
                                downsample: Downsample::when_needed(inplanes, out, stride, device),
                            }),
                            out,
                        )
                    }
                };
                stage.push(block);
                inplanes = out;
            }
            stages.push(stage);
        }
        let mut stages = stages.into_iter();
        let mut next = || stages.next().unwrap_or_default();
        Self {
            conv1: conv(channels, 64, 7, 2, 1, device),
            bn1: BatchNorm::new(64, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
            features: arch.features(),
        }
    }

    /// Width of the feature vector: 512 (basic blocks) or 2048 (bottlenecks).
    pub fn features(&self) -> usize {
        self.features
    }

    /// The last stage's feature maps `[N, 512 or 2048, H/32, W/32]`.
    pub fn maps(&self, x: Tensor<4>) -> Tensor<4> {
        // The max pool follows a ReLU, so its zero padding equals PyTorch's -inf padding.
        let mut x = self
            .maxpool
            .forward(relu(self.bn1.forward(self.conv1.forward(x))));
        for block in [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .flatten()
        {
            x = block.forward(x);
        }
        x
    }

    /// Features `[N, D]`: `AdaptiveAvgPool2d(1)` and `flatten(1)` of [`ImageNetResNet::maps`].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x: Tensor<3> = self.maps(x).flatten(2, 3);
        x.mean_dim(2).flatten(1, 2)
    }
}

#[cfg(test)]
#[path = "imagenet_resnet_tests.rs"]
mod tests;
