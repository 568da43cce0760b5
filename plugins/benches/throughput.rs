//! Training throughput of cauda's full loop against the bare Burn step, so the engine's own
//! overhead (input pipeline, loss bookkeeping, per-epoch setup) is measured and not guessed.
//!
//! For LeNet (1x28x28, no augmentation) and ResNet-32 (3x32x32, crop+flip), batch 128, SGD with
//! momentum 0.9 and weight decay, it times:
//! - `loop`: `train::train` on a balanced synthetic set; images/s is each epoch's own
//!   `EpochRecord::images_per_sec` (batch loop only, evaluation excluded), first epoch dropped;
//! - `bare`: forward + cross-entropy + backward + optimizer step on one pre-built tensor batch,
//!   as `train/stage.rs` does it, timed over blocks of steps ended by reading the loss, one
//!   block after each of the loop's epochs (from the run's `EventSink`), so both alternate;
//! - `parts`: what the loop adds per batch, each alone: batch assembly on the producer thread
//!   (`for_each_batch` with an empty step) and tensor creation from the batch's vectors.
//!
//! Prints one JSON line per measurement on stdout (read by `bench/throughput.sh`) and a summary
//! on stderr. `cargo bench -p cauda-plugins --bench throughput [-- lenet|resnet32]`;
//! `CAUDA_BENCH_SCALE` multiplies the number of rounds (loop epoch, then one block of each bare
//! variant; 10 for LeNet, 4 for ResNet-32).

use std::time::Instant;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use cauda_plugins::losses::{self, CrossEntropy};
use cauda_plugins::models::{BackboneKind, Classifier, HeadKind, InputShape, Shortcut};
use cauda_plugins::registry::builtin_registry;
use cauda_plugins::spec::{ExperimentSpec, PresetBook, ResolvedRun};
use cauda_plugins::train::{self, Checkpoint, EpochPlan, EpochRecord, EventSink, TrainError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 128;
const CLASSES: usize = 10;

/// One benchmarked configuration.
struct Case {
    name: &'static str,
    backbone: &'static str,
    kind: BackboneKind,
    shape: [usize; 3],
    crop_flip: bool,
    /// Batches per epoch of the loop and per timed block of the bare step.
    batches: usize,
    /// Untimed bare steps before timing.
    warmup: usize,
    /// Timed loop epochs (each followed by one block of each bare variant).
    rounds: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "lenet",
        backbone: "lenet",
        kind: BackboneKind::LeNet,
        shape: [1, 28, 28],
        crop_flip: false,
        batches: 40,
        warmup: 10,
        rounds: 10,
    },
    Case {
        name: "resnet32",
        backbone: "resnet32",
        kind: BackboneKind::ResNet {
            blocks: 5,
            shortcut: Shortcut::A,
        },
        shape: [3, 32, 32],
        crop_flip: true,
        batches: 5,
        warmup: 3,
        rounds: 4,
    },
];

fn spec(case: &Case, epochs: usize) -> ResolvedRun {
    let [c, h, w] = case.shape;
    // Balanced (no [data.imbalance]): every class has `per_class` images, so an epoch is exactly
    // `batches` full batches.
    let per_class = case.batches * BATCH / CLASSES;
    let text = format!(
        r#"
name = "throughput-{name}"
method = "ce"
[data]
format = "synthetic"
synthetic = {{ num_classes = {CLASSES}, per_class_train = {per_class}, per_class_test = 10, channels = {c}, height = {h}, width = {w}, seed = 0 }}
[model]
backbone = "{backbone}"
[augment]
crop_flip = {crop}
[train]
epochs = {epochs}
batch_size = {BATCH}
optimizer = {{ name = "sgd", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 }}
schedule = {{ name = "constant" }}
eval_every = 1000
checkpoint_every = 0
"#,
        name = case.name,
        backbone = case.backbone,
        crop = case.crop_flip,
    );
    assert_eq!(
        per_class * CLASSES,
        case.batches * BATCH,
        "an epoch must be whole batches"
    );
    let origin = "throughput.toml";
    ExperimentSpec::parse(origin, &text)
        .and_then(|s| s.resolve(origin, &PresetBook::builtin(), &builtin_registry()))
        .unwrap_or_else(|e| panic!("bench spec: {e}"))
}

/// The loop's sink: after every epoch it runs one block of each bare variant, so loop epochs
/// and bare blocks alternate finely and drift on a shared machine hits both alike.
struct Interleave {
    epochs: Vec<f64>,
    bare: Bare,
    tensors: Bare,
    bare_ips: Vec<f64>,
    tensors_ips: Vec<f64>,
}

impl EventSink for Interleave {
    fn on_epoch(&mut self, record: &EpochRecord) -> Result<(), TrainError> {
        self.epochs.push(record.images_per_sec as f64);
        self.bare_ips.push(self.bare.block(self.bare.batches));
        self.tensors_ips
            .push(self.tensors.block(self.tensors.batches));
        Ok(())
    }
    fn on_checkpoint(&mut self, _: &Checkpoint) -> Result<(), TrainError> {
        Ok(())
    }
}

/// Runs the full loop for `rounds + 1` epochs with bare blocks in between. Returns images/s of
/// the loop's epochs after the first, of the bare blocks (the one before the first timed epoch
/// included), of the bare-with-tensors blocks, and per-epoch paired ratios loop / bare, with
/// the bare step averaged over the blocks just before and after that epoch.
fn interleaved(case: &Case, rounds: usize, device: &Device) -> [Vec<f64>; 4] {
    let run = spec(case, rounds + 1);
    let data = train::prepare(&run.data).expect("synthetic data");
    let mut sink = Interleave {
        epochs: Vec::new(),
        bare: Bare::new(case, device, false),
        tensors: Bare::new(case, device, true),
        bare_ips: Vec::new(),
        tensors_ips: Vec::new(),
    };
    train::train(&run, &data, &builtin_registry(), device, None, &mut sink).expect("training");
    let loop_ips = sink.epochs[1..].to_vec();
    let paired = (1..sink.epochs.len())
        .map(|i| sink.epochs[i] / ((sink.bare_ips[i - 1] + sink.bare_ips[i]) / 2.0))
        .collect();
    [
        loop_ips,
        sink.bare_ips,
        sink.tensors_ips[1..].to_vec(),
        paired,
    ]
}

/// The bare Burn step of `train/stage.rs` on one fixed batch, timed in blocks of
/// `case.batches` steps, each block ended by reading the loss (which waits for the step).
struct Bare {
    model: Option<Classifier>,
    optim: ModuleOptimizer,
    lr: f64,
    dev: Device,
    shape: [usize; 4],
    pixels: Vec<f32>,
    labels: Vec<u32>,
    x: Tensor<4>,
    y: Tensor<1, Int>,
    /// Make the input tensors from the batch's vectors at every step, as `stage.rs` does.
    fresh_tensors: bool,
    batches: usize,
}

impl Bare {
    fn new(case: &Case, device: &Device, fresh_tensors: bool) -> Self {
        let run = spec(case, 1);
        let [c, h, w] = case.shape;
        let dev = device.clone().autodiff();
        let input = InputShape {
            channels: c,
            height: h,
            width: w,
        };
        let model =
            Classifier::new(case.kind, HeadKind::Linear, input, CLASSES, &dev).expect("model");
        let opt = &run.train.optimizer;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let pixels: Vec<f32> = (0..BATCH * c * h * w)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let labels: Vec<u32> = (0..BATCH as u32).map(|i| i % CLASSES as u32).collect();
        let shape = [BATCH, c, h, w];
        let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), shape), &dev);
        let y = labels_tensor(&labels, &dev);
        let mut bare = Self {
            model: Some(model),
            optim: train::build_optimizer(opt, opt.weight_decay),
            lr: opt.lr,
            dev,
            shape,
            pixels,
            labels,
            x,
            y,
            fresh_tensors,
            batches: case.batches,
        };
        bare.block(case.warmup);
        bare
    }

    /// Images/s of `steps` steps.
    fn block(&mut self, steps: usize) -> f64 {
        let started = Instant::now();
        let mut model = self.model.take().expect("model");
        let mut last = None;
        for _ in 0..steps {
            let (x, y) = if self.fresh_tensors {
                let x = TensorData::new(self.pixels.clone(), self.shape);
                (
                    Tensor::<4>::from_data(x, &self.dev),
                    labels_tensor(&self.labels, &self.dev),
                )
            } else {
                (self.x.clone(), self.y.clone())
            };
            let logits = model.forward(x);
            let loss = losses::combine(&CrossEntropy, logits, y, None, 0).expect("loss");
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = self.optim.step(self.lr, model.clone(), grads);
            last = Some(loss.detach());
        }
        let _: f32 = last.expect("at least one step").into_scalar();
        self.model = Some(model);
        (steps * BATCH) as f64 / started.elapsed().as_secs_f64()
    }
}

fn labels_tensor(labels: &[u32], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::<1, Int>::from_data(TensorData::new(v, [labels.len()]), device)
}

/// Milliseconds per batch of batch assembly alone (gather, crop+flip, normalize) through
/// `for_each_batch`, and of making the step's input tensors from a batch.
fn parts(case: &Case, device: &Device) -> (f64, f64) {
    let run = spec(case, 1);
    let data = train::prepare(&run.data).expect("synthetic data");
    let n = data.train.len();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let rounds = 5;
    let mut kept = None;
    let started = Instant::now();
    for r in 0..rounds {
        let plan = EpochPlan {
            set: &data.train,
            order: order.clone(),
            batch_size: BATCH,
            crop_pad: run.crop_flip.then_some(run.pad),
            transform: None,
            norm: &data.norm,
            mixer: None,
            class_counts: &data.class_counts,
            seed: r as u64,
            views: 1,
            second: None,
            at: (0, 1),
        };
        train::for_each_batch(plan, |b| -> Result<(), TrainError> {
            kept = Some(b);
            Ok(())
        })
        .expect("batches");
    }
    let assemble_ms = started.elapsed().as_secs_f64() * 1e3 / (rounds * case.batches) as f64;
    let batch = kept.expect("a batch");
    let dev = device.clone().autodiff();
    let [c, h, w] = case.shape;
    let reps = 50;
    let started = Instant::now();
    for _ in 0..reps {
        let b = batch.clone();
        let x = Tensor::<4>::from_data(TensorData::new(b.pixels, [BATCH, c, h, w]), &dev);
        let y = labels_tensor(&b.labels, &dev);
        std::hint::black_box((x, y));
    }
    let tensor_ms = started.elapsed().as_secs_f64() * 1e3 / reps as f64;
    (assemble_ms, tensor_ms)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn emit(model: &str, what: &str, samples: &[f64]) -> f64 {
    let med = median(samples);
    let line = serde_json::json!({
        "side": "cauda", "model": model, "what": what,
        "images_per_sec": med, "samples": samples,
    });
    println!("{line}");
    eprintln!("cauda {model:9} {what:12} {med:9.1} images/s  (samples {samples:.1?})");
    med
}

fn main() {
    let scale: f64 = std::env::var("CAUDA_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    // `cargo bench` passes `--bench`; any other argument selects cases by name.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let device = Device::default();
    for case in CASES {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == case.name) {
            continue;
        }
        let reps = ((case.rounds as f64 * scale).round() as usize).max(1);
        eprintln!(
            "== {}: batch {BATCH}, {} batches per epoch/block, {reps} rounds",
            case.name, case.batches
        );
        let [l, b, f, paired] = interleaved(case, reps, &device);
        let b = emit(case.name, "bare", &b);
        let f = emit(case.name, "bare+tensors", &f);
        let l = emit(case.name, "loop", &l);
        let ratio = median(&paired);
        let line = serde_json::json!({
            "side": "cauda", "model": case.name, "what": "paired",
            "loop_over_bare": ratio, "samples": paired,
        });
        println!("{line}");
        let (assemble_ms, tensor_ms) = parts(case, &device);
        let step_ms = BATCH as f64 * 1e3 / b;
        let line = serde_json::json!({
            "side": "cauda", "model": case.name, "what": "parts",
            "step_ms": step_ms, "assemble_ms": assemble_ms, "tensor_ms": tensor_ms,
        });
        println!("{line}");
        eprintln!(
            "cauda {:9} loop/bare {:.3} (paired {ratio:.3}, overhead {:+.1}%), bare+tensors/bare \
             {:.3}; per batch: step {step_ms:.2} ms, batch assembly {assemble_ms:.3} ms, tensor \
             creation {tensor_ms:.3} ms",
            case.name,
            l / b,
            (1.0 / ratio - 1.0) * 100.0,
            f / b,
        );
    }
}
