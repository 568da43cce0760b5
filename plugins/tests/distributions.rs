//! What the lockstep check cannot see, because it replays cauda's own batches and initial
//! weights: that cauda *draws* them from the distributions PyTorch/torchvision draw from.
//!
//! - initialization: per-layer mean and variance of every parameter over many fresh models,
//!   against the same statistics of `bench/reference.py`'s PyTorch models
//!   (`bench/fixtures/init_stats.py` -> `tests/fixtures/init_stats.json`);
//! - crop offsets and flips of the training pipeline: torchvision's `RandomCrop(padding=p)` +
//!   `RandomHorizontalFlip()` draw each offset uniformly from `0..=2p` and flip with probability
//!   1/2, independently; checked on marker images pushed through the real epoch pipeline.
//!   (Sampler frequencies are checked against their numpy fixture in `samplers/tests.rs`.)

use std::collections::BTreeMap;

use burn::tensor::Device;
use cauda_plugins::data::ImageSet;
use cauda_plugins::export::pytorch_tensors;
use cauda_plugins::models::{BackboneKind, Classifier, HeadKind, InputShape};
use cauda_plugins::train::{EpochPlan, Normalizer, for_each_batch};
use serde::Deserialize;

const INIT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/init_stats.json"
));

#[derive(Deserialize)]
struct InitFixture {
    cases: Vec<InitCase>,
}

#[derive(Deserialize)]
struct InitCase {
    backbone: String,
    /// BBN's two-branch network on `backbone` (the `bilateral` classifier).
    #[serde(default)]
    bilateral: bool,
    shape: [usize; 3],
    classes: usize,
    draws: usize,
    layers: BTreeMap<String, Stat>,
}

#[derive(Deserialize, Debug, Clone, Copy)]
struct Stat {
    values: usize,
    mean: f64,
    var: f64,
}

/// Mean and variance of every parameter (PyTorch names) over `draws` fresh models.
fn cauda_init_stats(case: &InitCase) -> BTreeMap<String, Stat> {
    let device = Device::flex();
    device.seed(12345);
    let kind = BackboneKind::parse(&case.backbone)
        .expect("backbone name")
        .with_bilateral(case.bilateral)
        .expect("a CIFAR ResNet");
    let [channels, height, width] = case.shape;
    let input = InputShape {
        channels,
        height,
        width,
    };
    let mut sums: BTreeMap<String, (usize, f64, f64)> = BTreeMap::new();
    for _ in 0..case.draws {
        let model = Classifier::new(kind, HeadKind::Linear, input, case.classes, &device).unwrap();
        for t in pytorch_tensors(&model).unwrap() {
            if t.name.ends_with("running_mean")
                || t.name.ends_with("running_var")
                || t.name.ends_with("num_batches_tracked")
            {
                continue; // buffers, not parameters
            }
            let s = sums.entry(t.name.clone()).or_default();
            for v in t.bytes.chunks_exact(4) {
                let v = f64::from(f32::from_le_bytes([v[0], v[1], v[2], v[3]]));
                s.0 += 1;
                s.1 += v;
                s.2 += v * v;
            }
        }
    }
    sums.into_iter()
        .map(|(k, (n, s1, s2))| {
            let mean = s1 / n as f64;
            (
                k,
                Stat {
                    values: n,
                    mean,
                    var: s2 / n as f64 - mean * mean,
                },
            )
        })
        .collect()
}

#[test]
fn initialization_draws_every_layer_from_pytorchs_distribution() {
    let fixture: InitFixture = serde_json::from_str(INIT).expect("init fixture parses");
    for case in &fixture.cases {
        let ours = cauda_init_stats(case);
        let names: Vec<&String> = ours.keys().collect();
        let theirs: Vec<&String> = case.layers.keys().collect();
        assert_eq!(names, theirs, "{}: parameter names", case.backbone);
        for (name, t) in &case.layers {
            let o = ours[name];
            assert_eq!(o.values, t.values, "{} {name}: value count", case.backbone);
            // Five standard errors of the difference of two independent estimates (the
            // variance's standard error is at most var * sqrt(2 / n) for these laws).
            let n = |s: &Stat| s.values as f64;
            let se_mean = (t.var / n(&o) + t.var / n(t)).sqrt();
            let se_var = t.var * (2.0 / n(&o) + 2.0 / n(t)).sqrt();
            assert!(
                (o.mean - t.mean).abs() <= 5.0 * se_mean + 1e-9,
                "{} {name}: mean {} in cauda, {} in PyTorch (se {se_mean:.2e})",
                case.backbone,
                o.mean,
                t.mean
            );
            assert!(
                (o.var - t.var).abs() <= 5.0 * se_var + 1e-9,
                "{} {name}: variance {} in cauda, {} in PyTorch (se {se_var:.2e})",
                case.backbone,
                o.var,
                t.var
            );
        }
    }
}

/// 12x12 images with a bright marker A at (6, 5) and a dimmer B right of it at (6, 6): where A
/// lands after the crop gives the offsets, whether B is left of A gives the flip.
fn marker_set(n: usize) -> ImageSet {
    let (h, w) = (12, 12);
    let mut pixels = vec![0u8; n * h * w];
    for img in pixels.chunks_exact_mut(h * w) {
        img[6 * w + 5] = 255;
        img[6 * w + 6] = 128;
    }
    ImageSet {
        pixels,
        labels: vec![0; n],
        channels: 1,
        height: h,
        width: w,
        class_names: vec!["a".into()],
    }
}

#[test]
fn crop_offsets_and_flips_are_uniform_and_independent_like_torchvision() {
    let pad = 4usize;
    let set = marker_set(512);
    let norm = Normalizer {
        mean: vec![0.0],
        std: vec![1.0],
    };
    let counts = vec![set.labels.len()];
    let side = 2 * pad + 1;
    let images = cauda_plugins::data::Images::from(set.clone());
    let mut joint = vec![0usize; side * side];
    let (mut flips, mut total) = (0usize, 0usize);
    for epoch in 0..8u64 {
        let plan = EpochPlan {
            set: &images,
            order: (0..set.labels.len()).collect(),
            batch_size: 64,
            crop_pad: Some(pad),
            transform: None,
            norm: &norm,
            mixer: None,
            class_counts: &counts,
            seed: 99 ^ epoch.wrapping_mul(0x9E37_79B9),
            views: 1,
            second: None,
            at: (0, 1),
        };
        for_each_batch(plan, |b| -> Result<(), cauda_plugins::train::TrainError> {
            for img in b.pixels.chunks_exact(144) {
                let a = img
                    .iter()
                    .position(|&v| v == 1.0)
                    .expect("marker A stays inside");
                let (ya, xa) = (a / 12, a % 12);
                let flipped = xa >= 1 && img[a - 1] > 0.4 && img[a - 1] < 0.6;
                let x_unflipped = if flipped { 11 - xa } else { xa };
                // Row y of the crop is row y + dy - pad of the image: A at 6 lands at 6 + pad - dy.
                let dy = 6 + pad - ya;
                let dx = 5 + pad - x_unflipped;
                joint[dy * side + dx] += 1;
                flips += usize::from(flipped);
                total += 1;
            }
            Ok(())
        })
        .unwrap();
    }
    // Chi-square of the 81 (dy, dx) cells against the uniform product law: 80 degrees of
    // freedom, 99.9th percentile 124.8.
    let expected = total as f64 / (side * side) as f64;
    let chi2: f64 = joint
        .iter()
        .map(|&o| (o as f64 - expected).powi(2) / expected)
        .sum();
    assert!(
        chi2 < 124.8,
        "offsets are not uniform and independent: chi2 {chi2:.1}"
    );
    // Flip rate 1/2: within 4 standard errors.
    let rate = flips as f64 / total as f64;
    let se = (0.25 / total as f64).sqrt();
    assert!((rate - 0.5).abs() < 4.0 * se, "flip rate {rate}");
}

/// mixup's mixing factor and partners (what a replay of already-mixed batches cannot see): `lam`
/// follows Beta(alpha, alpha) (mean 1/2, variance 1 / (4 (2 alpha + 1))) and the partner of each
/// image is uniform over the batch, as `torch.distributions.Beta` and `torch.randperm` draw them.
#[test]
fn mixup_draws_lambda_from_beta_and_partners_uniformly() {
    use rand::SeedableRng;
    for alpha in [1.0f64, 0.2, 2.0] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 8usize;
        let labels: Vec<u32> = (0..n as u32).collect();
        let pixels = vec![0f32; n];
        let draws = 20_000;
        let (mut s1, mut s2) = (0f64, 0f64);
        let mut partner = vec![0usize; n * n];
        for _ in 0..draws {
            let m = cauda_plugins::augment::mixup(&pixels, &labels, 1, alpha, &mut rng).unwrap();
            let lam = f64::from(m.lam[0]);
            s1 += lam;
            s2 += lam * lam;
            for (i, &b) in m.labels_b.iter().enumerate() {
                partner[i * n + b as usize] += 1;
            }
        }
        let mean = s1 / draws as f64;
        let var = s2 / draws as f64 - mean * mean;
        let want_var = 1.0 / (4.0 * (2.0 * alpha + 1.0));
        // Standard errors: sqrt(var / n) for the mean, about var * sqrt(2 / n) for the variance.
        assert!(
            (mean - 0.5).abs() < 5.0 * (want_var / draws as f64).sqrt(),
            "alpha {alpha}: mean {mean}"
        );
        assert!(
            (var - want_var).abs() < 5.0 * want_var * (2.0 / draws as f64).sqrt(),
            "alpha {alpha}: variance {var}, Beta's {want_var}"
        );
        // Each (image, partner) cell: 20,000 / 8 expected; chi-square with 56 degrees of freedom
        // (rows sum to the draws), 99.9th percentile 95.8.
        let e = draws as f64 / n as f64;
        let chi2: f64 = partner.iter().map(|&o| (o as f64 - e).powi(2) / e).sum();
        assert!(
            chi2 < 95.8,
            "alpha {alpha}: partners not uniform, chi2 {chi2:.1}"
        );
    }
}
