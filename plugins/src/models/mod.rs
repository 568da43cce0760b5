//! The classifiers cauda trains: a backbone that maps images to features and a head that maps
//! features to class logits, kept apart so decoupled methods (cRT, LWS, tau-norm) can freeze,
//! re-initialize or re-scale the head alone.

mod backbone;
pub mod batch_norm;
mod bilateral;
mod contrast;
mod experts;
mod head;
mod imagenet_resnet;
mod pretrained;
mod resnet;
mod torch_names;
mod weights_file;

pub use backbone::{Backbone, BackboneKind};
pub use batch_norm::BatchNorm;
pub use bilateral::BilateralResNet;
pub use contrast::{ContrastDesign, ContrastHeads, Mlp2};
pub use experts::{EXPERT_WIDTHS, ExpertResNet};
pub use head::{Head, HeadInit, HeadKind};
pub use imagenet_resnet::{ImageNetArch, ImageNetResNet};
pub use pretrained::{PretrainedError, PretrainedReport, load_pretrained, read_pretrained};
pub use resnet::{ResNet, Shortcut};
pub use torch_names::{ModulePath, TorchName};

use burn::module::Module;
use burn::tensor::{Device, Tensor};

/// Errors building a model from a spec.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model.{key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error(transparent)]
    Pretrained(#[from] PretrainedError),
}

/// Shape of the images a model is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// A full classifier: `head(backbone(x))`, and, for contrastive representation learning, the
/// heads that map features and class weights to embeddings (used in training only).
#[derive(Module, Debug)]
pub struct Classifier {
    pub backbone: Backbone,
    pub head: Head,
    pub contrast: Option<ContrastHeads>,
}

impl Classifier {
    /// Builds a freshly initialized classifier on `device`.
    pub fn new(
        backbone: BackboneKind,
        head: HeadKind,
        input: InputShape,
        num_classes: usize,
        device: &Device,
    ) -> Result<Self, ModelError> {
        if num_classes < 2 {
            return Err(ModelError::Invalid {
                key: "num_classes",
                message: format!("need at least 2 classes, got {num_classes}"),
            });
        }
        let init = backbone.head_init();
        let experts = backbone.experts();
        let backbone = Backbone::new(backbone, input, device)?;
        let head = Head::experts_with_init(
            head,
            init,
            backbone.feature_dim() / experts,
            num_classes,
            experts,
            device,
        )?;
        Ok(Self {
            backbone,
            head,
            contrast: None,
        })
    }

    /// The same model with the contrastive heads of `design` (`None`: without them).
    pub fn with_contrast(
        mut self,
        design: Option<ContrastDesign>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        self.contrast = match design {
            None => None,
            Some(_) if self.head.experts > 1 => {
                return Err(ModelError::Invalid {
                    key: "contrast",
                    message: "contrastive heads over several experts are not built".into(),
                });
            }
            Some(d) => Some(ContrastHeads::new(d, self.backbone.feature_dim(), device)?),
        };
        Ok(self)
    }

    /// Augmented views per image a training batch carries (1: the classification view alone).
    pub fn batch_views(&self) -> usize {
        self.contrast.as_ref().map_or(1, |c| 1 + c.views)
    }

    /// Whether the backbone has BBN's two branches ([`BilateralResNet`]).
    pub fn bilateral(&self) -> Option<&BilateralResNet> {
        match &self.backbone {
            Backbone::Bilateral(m) => Some(m),
            _ => None,
        }
    }

    /// Features `[N, D]` of images `[N, C, H, W]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone.forward(images)
    }

    /// Logits `[N, classes]` of images `[N, C, H, W]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.features(images))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn shape_check(kind: BackboneKind, input: InputShape) {
        let device = Device::default();
        let model = Classifier::new(kind, HeadKind::Linear, input, 10, &device).unwrap();
        let x = Tensor::<4>::random(
            [3, input.channels, input.height, input.width],
            Distribution::Default,
            &device,
        );
        assert_eq!(model.forward(x).dims(), [3, 10]);
    }

    #[test]
    fn every_backbone_gives_logits_for_every_input_size() {
        for name in ["mlp", "lenet", "resnet8", "resnet8b"] {
            let kind = BackboneKind::parse(name).unwrap();
            for input in [
                InputShape {
                    channels: 1,
                    height: 28,
                    width: 28,
                },
                InputShape {
                    channels: 1,
                    height: 8,
                    width: 8,
                },
                InputShape {
                    channels: 3,
                    height: 32,
                    width: 32,
                },
            ] {
                shape_check(kind, input);
            }
        }
    }

    #[test]
    fn resnet32_has_the_papers_parameter_count() {
        // He et al. 2016, Table 6 and Cao et al.'s resnet_cifar.py: ResNet-32 for CIFAR has
        // 0.46M parameters; that file's `test()` counts 464,154 with a 10-way linear head.
        // Burn's `num_params` also counts BatchNorm's running mean and variance (PyTorch
        // buffers): 2 x 1,136 channels (16 + 10 x 16 + 10 x 32 + 10 x 64). Option B's two
        // 1x1-conv + BN shortcuts add 16*32 + 4*32 and 32*64 + 4*64.
        let device = Device::default();
        let input = InputShape {
            channels: 3,
            height: 32,
            width: 32,
        };
        let bn_stats = 2 * 1_136;
        for (name, want) in [
            ("resnet32", 464_154 + bn_stats),
            (
                "resnet32b",
                464_154 + bn_stats + 16 * 32 + 4 * 32 + 32 * 64 + 4 * 64,
            ),
        ] {
            let kind = BackboneKind::parse(name).unwrap();
            let model = Classifier::new(kind, HeadKind::Linear, input, 10, &device).unwrap();
            assert_eq!(model.num_params(), want, "{name}");
        }
    }

    #[test]
    fn the_expert_resnet32_has_rides_parameter_count() {
        // RIDE's / SADE's `ResNet_s(BasicBlock, [5, 5, 5], num_experts=3, reduce_dimension=True,
        // use_norm=True)` (expert_resnet_cifar.py) has 770,896 parameters with 10 classes and
        // 783,856 with 100 (counted with PyTorch); Burn also counts BatchNorm's running mean
        // and variance: 2 x (16 + 5 x 2 x 16 + 3 x 5 x 2 x (24 + 48)) channels.
        let device = Device::default();
        let input = InputShape {
            channels: 3,
            height: 32,
            width: 32,
        };
        let bn_stats = 2 * (16 + 160 + 3 * 720);
        let kind = BackboneKind::parse("resnet32")
            .unwrap()
            .with_experts(3)
            .unwrap();
        for (classes, want) in [(10, 770_896), (100, 783_856)] {
            let model = Classifier::new(
                kind,
                HeadKind::Cosine { scale: 30.0 },
                input,
                classes,
                &device,
            )
            .unwrap();
            assert_eq!(model.num_params(), want + bn_stats, "{classes} classes");
            assert_eq!(model.head.classes(), classes);
            let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &device);
            let f = model.features(x.clone());
            assert_eq!(f.dims(), [2, 3 * 48]);
            let z = model.head.expert_logits(f.clone()).expect("experts");
            assert_eq!(z.dims(), [3, 2, classes]);
            // The model's logits are the experts' mean, each expert s cos within [-s, s].
            let mean: Vec<f32> = z.clone().mean_dim(0).into_data().iter::<f32>().collect();
            let out: Vec<f32> = model.forward(x).into_data().iter::<f32>().collect();
            for (a, b) in mean.iter().zip(&out) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
            let max = z.abs().max().into_data().iter::<f32>().next().unwrap();
            assert!(max <= 30.0 + 1e-3, "{max}");
        }
    }

    #[test]
    fn experts_need_a_cifar_resnet_and_a_sane_count() {
        let lenet = BackboneKind::parse("lenet").unwrap();
        assert_eq!(lenet.with_experts(1).unwrap(), lenet);
        let err = lenet.with_experts(3).unwrap_err().to_string();
        assert!(err.contains("only the CIFAR ResNets"), "{err}");
        let r8 = BackboneKind::parse("resnet8").unwrap();
        assert!(r8.with_experts(0).is_err());
        assert!(r8.with_experts(BackboneKind::MAX_EXPERTS + 1).is_err());
        let k = r8.with_experts(2).unwrap();
        assert_eq!((k.experts(), k.name()), (2, "resnet8"));
    }

    #[test]
    fn every_name_parses_and_unknown_names_do_not() {
        for name in BackboneKind::NAMES {
            assert!(BackboneKind::parse(name).is_some(), "{name}");
        }
        assert_eq!(
            BackboneKind::parse("resnet20"),
            Some(BackboneKind::ResNet {
                blocks: 3,
                shortcut: Shortcut::A
            })
        );
        assert!(BackboneKind::parse("resnet32a").is_none());
        for name in BackboneKind::NAMES {
            assert_eq!(BackboneKind::parse(name).unwrap().name(), *name);
        }
        // A stored run without the rule was made when resnet32 meant option B.
        let legacy = BackboneKind::parse_with_rule("resnet32", None).unwrap();
        assert_eq!(legacy.name(), "resnet32b");
        let current = BackboneKind::parse_with_rule("resnet32", Some(BackboneKind::BACKBONE_RULE));
        assert_eq!(current.unwrap().name(), "resnet32");
        assert_eq!(BackboneKind::rule_of("resnet32b"), None);
        assert_eq!(
            BackboneKind::parse_with_rule("lenet", None),
            Some(BackboneKind::LeNet)
        );
    }

    #[test]
    fn one_class_is_rejected() {
        let device = Device::default();
        let input = InputShape {
            channels: 1,
            height: 8,
            width: 8,
        };
        let err = Classifier::new(BackboneKind::Mlp, HeadKind::Linear, input, 1, &device);
        assert!(err.unwrap_err().to_string().contains("num_classes"));
    }
}
