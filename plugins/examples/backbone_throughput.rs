//! cauda's side of `bench/backbone_throughput.py`: forward + cross-entropy + backward of each
//! ImageNet backbone (with a linear head) on one random batch, on the flex CPU backend, so the
//! cost of the new networks is measured against PyTorch's on the same machine, not guessed.
//!
//! `cargo run --release -p cauda-plugins --example backbone_throughput -- [--size S] [--batch B]
//! [--steps N] [names...]` prints one JSON line per backbone: `ms_per_step` is the mean of N
//! timed steps after one untimed warm-up step; `images_per_sec` is `B / seconds per step`.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use cauda_plugins::models::{BackboneKind, Classifier, HeadKind, ImageNetArch, InputShape};

const CLASSES: usize = 1000;

fn arg(args: &[String], key: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap_or(default))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = arg(&args, "--size", 112);
    let batch = arg(&args, "--batch", 8);
    let steps = arg(&args, "--steps", 3).max(1);
    let names: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || !args[i - 1].starts_with("--")))
        .map(|(_, a)| a)
        .collect();
    let device = Device::default().autodiff();
    let input = InputShape {
        channels: 3,
        height: size,
        width: size,
    };
    for arch in ImageNetArch::ALL {
        if !names.is_empty() && !names.iter().any(|n| n.as_str() == arch.name()) {
            continue;
        }
        let kind = BackboneKind::ImageNet(arch);
        let model = match Classifier::new(kind, HeadKind::Linear, input, CLASSES, &device) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{}: {e}", arch.name());
                std::process::exit(1);
            }
        };
        let loss = CrossEntropyLossConfig::new().init(&device);
        let x = Tensor::<4>::random(
            [batch, 3, size, size],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let labels: Vec<i64> = (0..batch).map(|i| (i * 37 % CLASSES) as i64).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &device);
        let step = || {
            let l = loss.forward(model.forward(x.clone()), y.clone());
            let grads = l.backward();
            // Reading the loss waits for the step on any backend.
            let value: f32 = l.into_scalar();
            drop(grads);
            value
        };
        step();
        let start = Instant::now();
        let mut last = 0.0;
        for _ in 0..steps {
            last = step();
        }
        let secs = start.elapsed().as_secs_f64() / steps as f64;
        println!(
            "{{\"side\":\"cauda\",\"model\":\"{}\",\"size\":{size},\"batch\":{batch},\"steps\":{steps},\"ms_per_step\":{:.1},\"images_per_sec\":{:.2},\"loss\":{last:.4}}}",
            arch.name(),
            secs * 1e3,
            batch as f64 / secs
        );
    }
}
