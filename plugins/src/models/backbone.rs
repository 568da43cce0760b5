//! Feature extractors: an MLP, a LeNet-style CNN that fits 28x28 and 8x8 inputs, the CIFAR
//! ResNets and torchvision's ImageNet ResNets. Each maps `[N, C, H, W]` images to `[N, D]`
//! features.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::imagenet_resnet::{ImageNetArch, ImageNetResNet};
use super::resnet::Shortcut;
use super::{BilateralResNet, ExpertResNet, HeadInit, InputShape, ModelError, ResNet};

/// Which backbone to build. `ResNet { blocks, shortcut }` has `blocks` basic blocks per stage
/// (resnet8/20/32: 1/3/5): `resnet*` are the field's option-A networks with Kaiming-normal
/// init (Cao et al.'s `resnet_cifar.py`), `resnet*b` the option-B networks with Burn's init.
/// `ImageNet` are torchvision's networks (`resnet10`, `resnet18`, `resnet50`,
/// `resnext50_32x4d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackboneKind {
    Mlp,
    LeNet,
    ResNet {
        blocks: usize,
        shortcut: Shortcut,
    },
    /// A CIFAR ResNet whose last two stages are `experts` branches (RIDE's and SADE's
    /// `ResNet_s`, [`super::ExpertResNet`]); built from a ResNet name and `model.experts`.
    Experts {
        blocks: usize,
        shortcut: Shortcut,
        experts: usize,
    },
    /// A CIFAR ResNet whose last block is two branches (BBN's `BBN_ResNet_Cifar`,
    /// [`super::BilateralResNet`]); built from a ResNet name and `model.bilateral`.
    Bilateral {
        blocks: usize,
        shortcut: Shortcut,
    },
    ImageNet(ImageNetArch),
}

/// Spec name, blocks per stage and shortcut of every CIFAR ResNet.
const RESNETS: [(&str, usize, Shortcut); 6] = [
    ("resnet8", 1, Shortcut::A),
    ("resnet20", 3, Shortcut::A),
    ("resnet32", 5, Shortcut::A),
    ("resnet8b", 1, Shortcut::B),
    ("resnet20b", 3, Shortcut::B),
    ("resnet32b", 5, Shortcut::B),
];

impl BackboneKind {
    /// Every name a spec may use, for error messages and the plugin listing.
    pub const NAMES: &'static [&'static str] = &[
        "mlp",
        "lenet",
        "resnet8",
        "resnet20",
        "resnet32",
        "resnet8b",
        "resnet20b",
        "resnet32b",
        "resnet10",
        "resnet18",
        "resnet50",
        "resnext50_32x4d",
    ];

    /// Parses a spec name (one of [`BackboneKind::NAMES`]).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "mlp" => Some(Self::Mlp),
            "lenet" => Some(Self::LeNet),
            _ => RESNETS
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|&(_, blocks, shortcut)| Self::ResNet { blocks, shortcut })
                .or_else(|| ImageNetArch::parse(name).map(Self::ImageNet)),
        }
    }

    /// The current `ResolvedRun::backbone_rule`: `resnet8/20/32` are option A, Kaiming-normal.
    pub const BACKBONE_RULE: u32 = 2;

    /// The rule a resolved run records for `name`: only the option-A ResNet names, whose
    /// meaning changed, carry one.
    pub fn rule_of(name: &str) -> Option<u32> {
        matches!(
            Self::parse(name),
            Some(Self::ResNet {
                shortcut: Shortcut::A,
                ..
            })
        )
        .then_some(Self::BACKBONE_RULE)
    }

    /// [`BackboneKind::parse`] for a stored run: an option-A name without a rule is a run made
    /// before the rename, when `resnet8/20/32` were the option-B nets.
    pub fn parse_with_rule(name: &str, rule: Option<u32>) -> Option<Self> {
        match (Self::parse(name)?, rule) {
            (Self::ResNet { blocks, .. }, None) if Self::rule_of(name).is_some() => {
                Some(Self::ResNet {
                    blocks,
                    shortcut: Shortcut::B,
                })
            }
            (kind, _) => Some(kind),
        }
    }

    /// The most experts a model may have (`model.experts`).
    pub const MAX_EXPERTS: usize = 8;

    /// This backbone with its last two stages split into `experts` branches (`model.experts`);
    /// 1 is the backbone itself. Only the CIFAR ResNets have experts (the papers' `ResNet_s`).
    pub fn with_experts(self, experts: usize) -> Result<Self, ModelError> {
        match (self, experts) {
            (kind, 1) => Ok(kind),
            (Self::ResNet { blocks, shortcut }, 2..=Self::MAX_EXPERTS) => Ok(Self::Experts {
                blocks,
                shortcut,
                experts,
            }),
            (Self::ResNet { .. }, _) => Err(ModelError::Invalid {
                key: "experts",
                message: format!("{experts} experts; allowed: 1 to {}", Self::MAX_EXPERTS),
            }),
            (kind, _) => Err(ModelError::Invalid {
                key: "experts",
                message: format!(
                    "{experts} experts on `{}`; only the CIFAR ResNets (resnet8/20/32, \
                     resnet8b/20b/32b) have experts",
                    kind.name()
                ),
            }),
        }
    }

    /// This backbone with its last block split into BBN's two branches when `bilateral`
    /// (`model.bilateral`); only the CIFAR ResNets have them, as only they have experts.
    pub fn with_bilateral(self, bilateral: bool) -> Result<Self, ModelError> {
        match (self, bilateral) {
            (kind, false) => Ok(kind),
            (Self::ResNet { blocks, shortcut }, true) => Ok(Self::Bilateral { blocks, shortcut }),
            (kind, true) => Err(ModelError::Invalid {
                key: "bilateral",
                message: format!(
                    "two branches on `{}`; only the CIFAR ResNets (resnet8/20/32, \
                     resnet8b/20b/32b) have the bilateral branches",
                    kind.name()
                ),
            }),
        }
    }

    /// How many experts the model has (1 for a single-branch backbone).
    pub fn experts(self) -> usize {
        match self {
            Self::Experts { experts, .. } => experts,
            _ => 1,
        }
    }

    /// The spec name of this backbone (`resnet32b` for option B with 5 blocks; an expert
    /// ResNet has its base network's name, the experts being `model.experts`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Mlp => "mlp",
            Self::LeNet => "lenet",
            Self::ResNet { blocks, shortcut }
            | Self::Experts {
                blocks, shortcut, ..
            }
            | Self::Bilateral { blocks, shortcut } => RESNETS
                .iter()
                .find(|&&(_, b, s)| b == blocks && s == shortcut)
                .map_or("resnet", |&(n, _, _)| n),
            Self::ImageNet(arch) => arch.name(),
        }
    }

    /// How the classifier head on this backbone is initialized: Kaiming-normal on the
    /// option-A ResNets, as Cao et al.'s `_weights_init` does to every `nn.Linear`; PyTorch's
    /// default on the bilateral ResNet, whose classifier BBN builds outside the backbone that
    /// `_weights_init` is applied to (`lib/net/network.py`'s `nn.Linear`).
    pub fn head_init(self) -> HeadInit {
        match self {
            Self::ResNet {
                shortcut: Shortcut::A,
                ..
            }
            | Self::Experts {
                shortcut: Shortcut::A,
                ..
            } => HeadInit::KaimingNormal,
            _ => HeadInit::Torch,
        }
    }
}

/// Two hidden layers of 256 and 128 units with ReLU.
#[derive(Module, Debug)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

/// LeNet-5 with padded 5x5 convolutions (6 and 16 maps, each followed by 2x2 max pooling), then
/// 120- and 84-unit layers. Padding keeps it valid for 8x8 digits as well as 28x28 images.
#[derive(Module, Debug)]
pub struct LeNet {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
}

/// A backbone of any kind. A model holds exactly one, so the variants' size difference costs nothing.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Backbone {
    Mlp(Mlp),
    LeNet(LeNet),
    ResNet(ResNet),
    Experts(ExpertResNet),
    Bilateral(BilateralResNet),
    ImageNet(ImageNetResNet),
}

impl Backbone {
    pub fn new(kind: BackboneKind, input: InputShape, device: &Device) -> Result<Self, ModelError> {
        let InputShape {
            channels,
            height,
            width,
        } = input;
        if channels == 0 || height == 0 || width == 0 {
            return Err(ModelError::Invalid {
                key: "backbone",
                message: format!("empty input shape {channels}x{height}x{width}"),
            });
        }
        Ok(match kind {
            BackboneKind::Mlp => Backbone::Mlp(Mlp {
                fc1: LinearConfig::new(channels * height * width, 256).init(device),
                fc2: LinearConfig::new(256, 128).init(device),
            }),
            BackboneKind::LeNet => {
                if height < 4 || width < 4 {
                    return Err(ModelError::Invalid {
                        key: "backbone",
                        message: format!(
                            "lenet needs images of at least 4x4, got {height}x{width}"
                        ),
                    });
                }
                let pad = PaddingConfig2d::Explicit(2, 2, 2, 2);
                Backbone::LeNet(LeNet {
                    conv1: Conv2dConfig::new([channels, 6], [5, 5])
                        .with_padding(pad.clone())
                        .init(device),
                    conv2: Conv2dConfig::new([6, 16], [5, 5])
                        .with_padding(pad)
                        .init(device),
                    pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
                    fc1: LinearConfig::new(16 * (height / 4) * (width / 4), 120).init(device),
                    fc2: LinearConfig::new(120, 84).init(device),
                })
            }
            BackboneKind::ResNet { blocks, shortcut } => {
                if blocks == 0 {
                    return Err(ModelError::Invalid {
                        key: "backbone",
                        message: "a ResNet needs at least one block per stage".into(),
                    });
                }
                Backbone::ResNet(ResNet::new(channels, blocks, shortcut, device))
            }
            BackboneKind::Experts {
                blocks,
                shortcut,
                experts,
            } => {
                if blocks == 0 || !(2..=BackboneKind::MAX_EXPERTS).contains(&experts) {
                    return Err(ModelError::Invalid {
                        key: "experts",
                        message: format!(
                            "an expert ResNet needs at least one block per stage and 2 to {} \
                             experts, got {blocks} and {experts}",
                            BackboneKind::MAX_EXPERTS
                        ),
                    });
                }
                Backbone::Experts(ExpertResNet::new(
                    channels, blocks, shortcut, experts, device,
                ))
            }
            BackboneKind::Bilateral { blocks, shortcut } => {
                if blocks == 0 {
                    return Err(ModelError::Invalid {
                        key: "backbone",
                        message: "a ResNet needs at least one block per stage".into(),
                    });
                }
                Backbone::Bilateral(BilateralResNet::new(channels, blocks, shortcut, device))
            }
            BackboneKind::ImageNet(arch) => {
                Backbone::ImageNet(ImageNetResNet::new(arch, channels, device))
            }
        })
    }

    /// Width of the feature vector.
    pub fn feature_dim(&self) -> usize {
        match self {
            Backbone::Mlp(_) => 128,
            Backbone::LeNet(_) => 84,
            Backbone::ResNet(_) => ResNet::FEATURES,
            Backbone::Experts(m) => m.experts() * ExpertResNet::EXPERT_FEATURES,
            Backbone::Bilateral(_) => 2 * BilateralResNet::BRANCH_FEATURES,
            Backbone::ImageNet(m) => m.features(),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Backbone::Mlp(m) => {
                let x: Tensor<2> = x.flatten(1, 3);
                relu(m.fc2.forward(relu(m.fc1.forward(x))))
            }
            Backbone::LeNet(m) => {
                let x = m.pool.forward(relu(m.conv1.forward(x)));
                let x = m.pool.forward(relu(m.conv2.forward(x)));
                let x: Tensor<2> = x.flatten(1, 3);
                relu(m.fc2.forward(relu(m.fc1.forward(x))))
            }
            Backbone::ResNet(m) => m.forward(x),
            Backbone::Experts(m) => m.forward(x),
            Backbone::Bilateral(m) => m.forward(x),
            Backbone::ImageNet(m) => m.forward(x),
        }
    }
}
