//! The ImageNet ResNets against torchvision's published sizes and initialization.

use burn::tensor::{Device, Distribution, Tensor};

use super::*;
use crate::export::pytorch_tensors;
use crate::models::{BackboneKind, Classifier, HeadKind, InputShape};

const RGB32: InputShape = InputShape {
    channels: 3,
    height: 32,
    width: 32,
};

fn classifier(arch: ImageNetArch, classes: usize) -> Classifier {
    let kind = BackboneKind::ImageNet(arch);
    Classifier::new(kind, HeadKind::Linear, RGB32, classes, &Device::default()).unwrap()
}

#[test]
fn parameter_counts_are_torchvisions() {
    // torchvision's model cards (1000-way fc): resnet18 11,689,512; resnet50 25,557,032;
    // resnext50_32x4d 25,028,904. resnet10 (not in torchvision) by hand: stem 9,408 + 128,
    // stages 73,984 + 230,144 + 919,040 + 3,673,088, fc 513,000. PyTorch's `parameters()`
    // leaves out BatchNorm's running statistics, which the export also writes.
    for (arch, want) in [
        (ImageNetArch::ResNet10, 5_418_792),
        (ImageNetArch::ResNet18, 11_689_512),
        (ImageNetArch::ResNet50, 25_557_032),
        (ImageNetArch::ResNeXt50x32x4d, 25_028_904),
    ] {
        let params: usize = pytorch_tensors(&classifier(arch, 1000))
            .unwrap()
            .iter()
            .filter(|t| {
                !["running_mean", "running_var", "num_batches_tracked"]
                    .iter()
                    .any(|b| t.name.ends_with(b))
            })
            .map(|t| t.shape.iter().product::<usize>())
            .sum();
        assert_eq!(params, want, "{}", arch.name());
    }
}

#[test]
fn every_network_gives_its_features_for_small_and_odd_inputs() {
    let device = Device::default();
    for arch in ImageNetArch::ALL {
        let model = classifier(arch, 5);
        assert_eq!(model.backbone.feature_dim(), arch.features());
        for [h, w] in [[32, 32], [33, 47]] {
            let x = Tensor::<4>::random([2, 3, h, w], Distribution::Default, &device);
            assert_eq!(model.features(x.clone()).dims(), [2, arch.features()]);
            assert_eq!(model.forward(x).dims(), [2, 5], "{}", arch.name());
        }
    }
}

#[test]
fn names_parse_and_round_trip() {
    for arch in ImageNetArch::ALL {
        assert_eq!(ImageNetArch::parse(arch.name()), Some(arch));
        let kind = BackboneKind::parse(arch.name()).unwrap();
        assert_eq!(kind, BackboneKind::ImageNet(arch));
        assert_eq!(kind.name(), arch.name());
        assert_eq!(BackboneKind::rule_of(arch.name()), None);
    }
    assert_eq!(ImageNetArch::parse("resnext50"), None);
}

fn std_of(conv: &Conv2d) -> f64 {
    let w: Vec<f32> = conv.weight.val().into_data().iter::<f32>().collect();
    let n = w.len() as f64;
    let mean = w.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    (w.iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

#[test]
fn convolutions_are_kaiming_normal_fan_out_whatever_the_groups() {
    // kaiming_normal_(mode="fan_out", nonlinearity="relu"): std sqrt(2 / (out * k * k)). The
    // grouped 3x3 of ResNeXt's first block (128 -> 128, 32 groups) has std sqrt(2 / 1152) =
    // 0.0417; Burn's own fan-out (divided by the groups) would give sqrt(32) times more.
    let model = ImageNetResNet::new(ImageNetArch::ResNeXt50x32x4d, 3, &Device::default());
    let Block::Bottleneck(b) = &model.layer1[0] else {
        panic!("resnext has bottlenecks");
    };
    assert_eq!(b.conv2.weight.dims(), [128, 4, 3, 3]);
    for (conv, fan_out) in [
        (&b.conv2, 128 * 9),
        (&b.conv3, 256),
        (&model.conv1, 64 * 49),
    ] {
        let want = (2.0 / fan_out as f64).sqrt();
        let got = std_of(conv);
        assert!((got / want - 1.0).abs() < 0.05, "std {got} vs {want}");
    }
    let bn: Vec<f32> = b.bn2.gamma.val().into_data().iter::<f32>().collect();
    assert!(bn.iter().all(|&g| g == 1.0));
}
