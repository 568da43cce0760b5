//! The option-A network against Cao et al.'s `resnet_cifar.py`: the shortcut's exact values,
//! Kaiming-normal variances per layer, gradients through the shortcut.

use burn::tensor::{Device, Distribution, Tensor, TensorData};

use super::*;
use crate::models::{Backbone, BackboneKind, Classifier, HeadKind, InputShape};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

#[test]
fn option_a_keeps_every_other_pixel_and_pads_channels_with_zeros() {
    // x[0, c, i, j] = 100 c + 10 i + j on a 2x5x5 input (odd size: ::2 keeps rows 0, 2, 4).
    let device = Device::default();
    let data: Vec<f32> = (0..2)
        .flat_map(|c| (0..5).flat_map(move |i| (0..5).map(move |j| (100 * c + 10 * i + j) as f32)))
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(data, [1, 2, 5, 5]), &device);
    let y = option_a(x, 1);
    assert_eq!(y.dims(), [1, 4, 3, 3]);
    let got = values(y);
    let mut want = vec![0f32; 9];
    for c in 0..2 {
        for i in [0, 2, 4] {
            for j in [0, 2, 4] {
                want.push((100 * c + 10 * i + j) as f32);
            }
        }
    }
    want.extend([0f32; 9]);
    assert_eq!(got, want);
}

#[test]
fn option_a_subsamples_even_odd_and_mixed_sides_like_numpy_slicing() {
    let device = Device::default();
    for (h, w) in [(4usize, 6usize), (5, 4), (4, 5), (1, 1), (8, 8)] {
        let data: Vec<f32> = (0..h * w).map(|k| k as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(data, [1, 1, h, w]), &device);
        let y = option_a(x, 0);
        assert_eq!(y.dims(), [1, 1, h.div_ceil(2), w.div_ceil(2)], "{h}x{w}");
        let want: Vec<f32> = (0..h)
            .step_by(2)
            .flat_map(|i| (0..w).step_by(2).map(move |j| (i * w + j) as f32))
            .collect();
        assert_eq!(values(y), want, "{h}x{w}");
    }
}

#[test]
fn option_a_blocks_have_no_shortcut_parameters_and_b_blocks_do() {
    let device = Device::default();
    let a = ResNet::new(3, 5, Shortcut::A, &device);
    assert!(a.blocks.iter().all(|b| b.shortcut.is_none()));
    let padded: Vec<usize> = a.blocks.iter().map(|b| b.pad_channels).collect();
    assert_eq!(padded, [0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 16, 0, 0, 0, 0]);
    let b = ResNet::new(3, 5, Shortcut::B, &device);
    let projected: Vec<usize> = (0..15)
        .filter(|&i| b.blocks[i].shortcut.is_some())
        .collect();
    assert_eq!(projected, [5, 10]);
    assert!(b.blocks.iter().all(|b| b.pad_channels == 0));
}

/// Sample variance of the values of `w` across `draws` fresh networks.
fn pooled_variance(draws: impl Iterator<Item = Vec<f32>>) -> (f64, usize) {
    let all: Vec<f64> = draws.flatten().map(f64::from).collect();
    let n = all.len() as f64;
    let mean = all.iter().sum::<f64>() / n;
    let var = all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (var, all.len())
}

fn resnet_of(model: &Classifier) -> &ResNet {
    match &model.backbone {
        Backbone::ResNet(r) => r,
        other => panic!("not a ResNet: {other:?}"),
    }
}

#[test]
fn option_a_layers_are_kaiming_normal_with_variance_two_over_fan_in() {
    let device = Device::default();
    let input = InputShape {
        channels: 3,
        height: 32,
        width: 32,
    };
    let kind = BackboneKind::parse("resnet8").unwrap();
    let models: Vec<Classifier> = (0..24)
        .map(|_| Classifier::new(kind, HeadKind::Linear, input, 10, &device).unwrap())
        .collect();
    // (layer, fan_in) for the stem, the first block of each stage, and the head.
    type Pick = fn(&Classifier) -> Tensor<4>;
    let layers: [(&str, Pick, usize); 5] = [
        ("stem", |m| resnet_of(m).stem.weight.val(), 3 * 9),
        (
            "block0.conv1",
            |m| resnet_of(m).blocks[0].conv1.weight.val(),
            16 * 9,
        ),
        (
            "block1.conv1",
            |m| resnet_of(m).blocks[1].conv1.weight.val(),
            16 * 9,
        ),
        (
            "block2.conv1",
            |m| resnet_of(m).blocks[2].conv1.weight.val(),
            32 * 9,
        ),
        (
            "block2.conv2",
            |m| resnet_of(m).blocks[2].conv2.weight.val(),
            64 * 9,
        ),
    ];
    for (name, pick, fan_in) in layers {
        let (var, n) = pooled_variance(models.iter().map(|m| values(pick(m))));
        let want = 2.0 / fan_in as f64;
        // The sample variance of n normal draws has relative standard error sqrt(2 / n) (<= 1.8%
        // here): 10% is more than 5 standard errors, and far from Burn's default (1/3 of it).
        assert!(
            (var / want - 1.0).abs() < 0.1,
            "{name}: variance {var} over {n} weights, Kaiming-normal wants {want}"
        );
    }
    let (var, n) = pooled_variance(models.iter().map(|m| values(m.head.weight.val())));
    assert!(
        (var / (2.0 / 64.0) - 1.0).abs() < 0.1,
        "head: variance {var} over {n} weights, want 2/64"
    );
    for m in &models[..2] {
        let r = resnet_of(m);
        assert!(values(r.stem_bn.gamma.val()).iter().all(|&g| g == 1.0));
        assert!(values(r.stem_bn.beta.val()).iter().all(|&b| b == 0.0));
    }
}

#[test]
fn option_b_keeps_burns_default_init() {
    // Burn's Conv2d default is PyTorch's: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance
    // 1 / (3 fan_in), a sixth of Kaiming-normal's.
    let device = Device::default();
    let (var, _) = pooled_variance((0..8).map(|_| {
        values(
            ResNet::new(3, 1, Shortcut::B, &device).blocks[2]
                .conv2
                .weight
                .val(),
        )
    }));
    let want = 1.0 / (3.0 * 64.0 * 9.0);
    assert!(
        (var / want - 1.0).abs() < 0.1,
        "variance {var}, want {want}"
    );
}

#[test]
fn gradients_flow_through_the_option_a_shortcut() {
    let device = Device::default().autodiff();
    let net = ResNet::new(3, 1, Shortcut::A, &device);
    let x = Tensor::<4>::random([2, 3, 8, 8], Distribution::Default, &device).require_grad();
    let grads = net.forward(x.clone()).sum().backward();
    let g = x.grad(&grads).expect("the input has a gradient");
    assert_eq!(g.dims(), [2, 3, 8, 8]);
    assert!(net.blocks[1].conv1.weight.val().grad(&grads).is_some());
}

#[test]
fn the_option_a_gradient_is_one_on_the_kept_pixels_and_zero_elsewhere() {
    let device = Device::default().autodiff();
    let x = Tensor::<4>::random([1, 2, 5, 5], Distribution::Default, &device).require_grad();
    let grads = option_a(x.clone(), 1).sum().backward();
    let g = values(x.grad(&grads).expect("a gradient"));
    for (k, v) in g.iter().enumerate() {
        let (i, j) = ((k / 5) % 5, k % 5);
        let want = if i % 2 == 0 && j % 2 == 0 { 1.0 } else { 0.0 };
        assert_eq!(*v, want, "d/dx at channel {} ({i}, {j})", k / 25);
    }
}
