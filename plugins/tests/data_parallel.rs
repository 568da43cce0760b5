//! Data-parallel training (`resources.gpus = N`, `train::parallel`) on several CPU devices of one
//! backend against one device:
//! - a run without BatchNorm (LeNet, crop+flip, SGD with momentum and weight decay, a ragged
//!   last batch) trained for two epochs on 2 and on 3 devices ends with the weights, losses and
//!   accuracies of the 1-device run on the same global batches, within float rounding;
//! - with BatchNorm (ResNet-8) one step's all-reduced gradients are the shard-weighted mean of
//!   each shard's own gradients (every replica normalizes its shard with its shard's
//!   statistics, as DDP without SyncBatchNorm), and the running statistics afterwards are those
//!   of the first shard alone (DDP's rank-0 buffers);
//! - a 2-device run resumed from its first epoch's checkpoint ends where the uninterrupted one
//!   does;
//! - a contrastive model's batch of views (BCL) is cut into shards view by view;
//! - a loss that draws noise (GCL) draws each shard's rows of the global batch.
//! - a second sampler stream's batch (BBN) is cut into the same shards as the main batch.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use cauda_plugins::export::{pytorch_tensors, rebuild};
use cauda_plugins::losses::CrossEntropy;
use cauda_plugins::models::{BackboneKind, Classifier, HeadKind, InputShape, Shortcut};
use cauda_plugins::registry::builtin_registry;
use cauda_plugins::spec::{ExperimentSpec, PresetBook, ResolvedRun};
use cauda_plugins::train::parallel::data_parallel_grads;
use cauda_plugins::train::{
    self, Batch, Checkpoint, EpochRecord, EventSink, RunSummary, Stream, TrainError,
};

/// Burn seeds one process-wide RNG for weight initialization: tests that compare two runs'
/// initial weights must not draw from it at the same time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct Keep {
    epochs: Vec<EpochRecord>,
    checkpoints: Vec<Checkpoint>,
}

impl EventSink for Keep {
    fn on_epoch(&mut self, r: &EpochRecord) -> Result<(), TrainError> {
        self.epochs.push(r.clone());
        Ok(())
    }
    fn on_checkpoint(&mut self, c: &Checkpoint) -> Result<(), TrainError> {
        self.checkpoints.push(c.clone());
        Ok(())
    }
}

/// GCL's clouds are drawn per row of the global batch (each shard from its first row on): on two
/// devices both of its stages (mixup, cosine head, the classifier stage) train what one device
/// trains.
#[test]
fn gcl_on_two_devices_draws_the_clouds_of_one_device() {
    let _serial = serial();
    // Long-tailed, so that the clouds are not all 0 (they grow from the largest class's 0).
    let run = lenet_method_run_on("gcl", "imbalance = { profile = \"exp\", ratio = 10 }");
    let (one, one_keep, one_w) = train_on(&run, 1, None);
    let (two, keep, w) = train_on(&run, 2, None);
    assert!(keep.epochs.iter().any(|e| e.stage == 2));
    for (a, b) in one_keep.epochs.iter().zip(&keep.epochs) {
        assert_close(
            &format!("epoch {} loss", a.epoch),
            &[a.train_loss],
            &[b.train_loss],
            1e-5,
        );
    }
    for ((name, a), (_, b)) in one_w.iter().zip(&w) {
        assert_close(&format!("2 devices: {name}"), a, b, 1e-5);
    }
    assert!((one.last.test_top1 - two.last.test_top1).abs() < 1e-6);
}

fn lenet_run() -> ResolvedRun {
    lenet_method_run("ce")
}

fn lenet_method_run(method: &str) -> ResolvedRun {
    lenet_method_run_on(method, "")
}

/// `data` adds keys to the `[data]` section.
fn lenet_method_run_on(method: &str, data: &str) -> ResolvedRun {
    // 4 classes x 23 images: batches of 16 leave a last batch of 12 (shards 6 + 6, or 4 + 4 + 4).
    let head = format!("name = \"ddp\"\nmethod = \"{method}\"\n[data]\n{data}\n");
    let text = head
        + r#"format = "synthetic"
synthetic = { num_classes = 4, per_class_train = 23, per_class_test = 5, channels = 1, height = 28, width = 28, seed = 3 }
[model]
backbone = "lenet"
[train]
epochs = 2
batch_size = 16
checkpoint_every = 1
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 }
[augment]
crop_flip = true
[resources]
gpus = 2
"#;
    ExperimentSpec::parse("ddp.toml", &text)
        .unwrap()
        .resolve("ddp.toml", &PresetBook::builtin(), &builtin_registry())
        .unwrap()
}

fn train_on(
    run: &ResolvedRun,
    devices: usize,
    resume: Option<Checkpoint>,
) -> (RunSummary, Keep, Vec<(String, Vec<f32>)>) {
    let data = train::prepare(&run.data).unwrap();
    let devices = vec![Device::flex(); devices];
    let mut keep = Keep::default();
    let summary =
        train::train_on(run, &data, &builtin_registry(), &devices, resume, &mut keep).unwrap();
    let last = keep.checkpoints.last().unwrap();
    let model = rebuild(run, last, &Device::flex()).unwrap();
    let weights = pytorch_tensors(&model)
        .unwrap()
        .into_iter()
        .map(|t| {
            let v = t
                .bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (t.name, v)
        })
        .collect();
    (summary, keep, weights)
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}");
    let scale = a.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(
        worst <= tol * scale,
        "{what}: differs by {worst} (scale {scale})"
    );
}

#[test]
fn two_and_three_devices_train_what_one_device_trains() {
    let _serial = serial();
    let run = lenet_run();
    let (one, one_keep, one_w) = train_on(&run, 1, None);
    for n in [2, 3] {
        let (many, keep, w) = train_on(&run, n, None);
        for (a, b) in one_keep.epochs.iter().zip(&keep.epochs) {
            assert_close(
                &format!("{n} devices: epoch {} loss", a.epoch),
                &[a.train_loss],
                &[b.train_loss],
                1e-5,
            );
        }
        for ((name, a), (_, b)) in one_w.iter().zip(&w) {
            assert_close(&format!("{n} devices: {name}"), a, b, 1e-5);
        }
        assert!((one.last.test_top1 - many.last.test_top1).abs() < 1e-6);
        assert_eq!(one.epochs, many.epochs);
    }
}

/// kd's stage 2 gives every replica the frozen teacher (its logits of the replica's shard):
/// on two devices it distils what one device distils.
#[test]
fn kd_on_two_devices_distils_what_one_device_distils() {
    let _serial = serial();
    let run = lenet_method_run("kd");
    let (one, one_keep, one_w) = train_on(&run, 1, None);
    let (two, keep, w) = train_on(&run, 2, None);
    assert_eq!(keep.epochs.iter().filter(|e| e.stage == 2).count(), 2);
    for (a, b) in one_keep.epochs.iter().zip(&keep.epochs) {
        assert_close(
            &format!("epoch {} loss", a.epoch),
            &[a.train_loss],
            &[b.train_loss],
            1e-5,
        );
    }
    for ((name, a), (_, b)) in one_w.iter().zip(&w) {
        assert_close(&format!("2 devices: {name}"), a, b, 1e-5);
    }
    assert!((one.last.test_top1 - two.last.test_top1).abs() < 1e-6);
}

#[test]
fn a_resumed_data_parallel_run_ends_where_the_whole_run_ends() {
    let _serial = serial();
    let run = lenet_run();
    let (_, keep, whole) = train_on(&run, 2, None);
    let first = keep.checkpoints[0].clone();
    assert_eq!(first.header.epochs_done, 1);
    let (_, resumed_keep, resumed) = train_on(&run, 2, Some(first));
    assert_eq!(resumed_keep.epochs.len(), 1, "only the second epoch runs");
    for ((name, a), (_, b)) in whole.iter().zip(&resumed) {
        assert_eq!(a, b, "{name}");
    }
}

/// Collects every float parameter's gradient (by name order of visit) from `grads`.
struct Grads<'a> {
    grads: &'a GradientsParams,
    out: Vec<Vec<f32>>,
}

impl ModuleVisitor for Grads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.out.push(g.into_data().iter::<f32>().collect());
        }
    }
}

fn grads_of(model: &Classifier, g: &GradientsParams) -> Vec<Vec<f32>> {
    let mut v = Grads {
        grads: g,
        out: Vec::new(),
    };
    model.visit(&mut v);
    v.out
}

/// Every running statistic of `model` (BatchNorm buffers), in visit order.
fn running_stats(model: &Classifier) -> Vec<f32> {
    pytorch_tensors(&model.valid())
        .unwrap()
        .into_iter()
        .filter(|t| t.name.contains("running_"))
        .flat_map(|t| {
            t.bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn with_batchnorm_each_replica_normalizes_its_shard_and_replica_zero_keeps_the_statistics() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    let shape = InputShape {
        channels: 3,
        height: 8,
        width: 8,
    };
    let fresh = || {
        device.seed(11);
        Classifier::new(
            BackboneKind::ResNet {
                blocks: 1,
                shortcut: Shortcut::A,
            },
            HeadKind::Linear,
            shape,
            5,
            &device,
        )
        .unwrap()
    };
    let n = 10;
    let per = 3 * 8 * 8;
    let pixels: Vec<f32> = (0..n * per)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 5).collect();
    let batch = |r: std::ops::Range<usize>| Batch {
        pixels: pixels[r.start * per..r.end * per].to_vec(),
        labels: labels[r.clone()].to_vec(),
        views: 1,
        mixed: None,
        draws: Vec::new(),
        second: None,
    };
    let loss = CrossEntropy;
    // Two devices on the whole batch: shards 0..5 and 5..10.
    let model = fresh();
    let (g, l) = data_parallel_grads(
        &model,
        None,
        &[device.clone(), device.clone()],
        &batch(0..n),
        [3, 8, 8],
        &loss,
        (0, 0, 0),
    )
    .unwrap();
    let ddp = grads_of(&model, &g);
    let ddp_stats = running_stats(&model);
    // Each shard alone on one device, each on its own fresh copy of the same weights.
    let alone = |r: std::ops::Range<usize>| {
        let m = fresh();
        let (g, l) = data_parallel_grads(
            &m,
            None,
            std::slice::from_ref(&device),
            &batch(r),
            [3, 8, 8],
            &loss,
            (0, 0, 0),
        )
        .unwrap();
        (grads_of(&m, &g), l.into_scalar::<f32>(), running_stats(&m))
    };
    let (ga, la, stats_a) = alone(0..5);
    let (gb, lb, _) = alone(5..10);
    assert_close("loss", &[l.into_scalar::<f32>()], &[(la + lb) / 2.0], 1e-5);
    assert_eq!(ddp.len(), ga.len());
    for (i, ((d, a), b)) in ddp.iter().zip(&ga).zip(&gb).enumerate() {
        let mean: Vec<f32> = a.iter().zip(b).map(|(x, y)| (x + y) / 2.0).collect();
        assert_close(&format!("gradient {i}"), d, &mean, 1e-4);
    }
    assert_close("running statistics", &ddp_stats, &stats_a, 1e-6);
    // A whole-batch BatchNorm would have given other gradients: the check can tell.
    let whole = alone(0..n).0;
    let differs = whole
        .iter()
        .zip(&ddp)
        .any(|(w, d)| w.iter().zip(d).any(|(x, y)| (x - y).abs() > 1e-3));
    assert!(
        differs,
        "shard statistics and batch statistics gave the same gradients"
    );
}

#[test]
fn running_statistics_follow_every_step_of_a_data_parallel_run() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    let shape = InputShape {
        channels: 3,
        height: 8,
        width: 8,
    };
    // Two models with the same weights and their own running state (a clone would share it);
    // Burn's initializers are lazy, so each model's weights are drawn right after its seed.
    let make = || {
        Device::flex().seed(4);
        let m = Classifier::new(
            BackboneKind::ResNet {
                blocks: 1,
                shortcut: Shortcut::A,
            },
            HeadKind::Linear,
            shape,
            3,
            &device,
        )
        .unwrap();
        let _ = pytorch_tensors(&m).unwrap();
        m
    };
    let model = make();
    let per = 3 * 8 * 8;
    let a: Vec<f32> = (0..4 * per)
        .map(|i| ((i * 29 % 97) as f32 / 40.0) - 1.0)
        .collect();
    let labels = vec![0u32, 1, 2, 0];
    // The same four images on both replicas: each replica's shard statistics are A's, so the
    // running statistics after every step must be those of one device seeing A that many times.
    let doubled = Batch {
        pixels: [a.clone(), a.clone()].concat(),
        labels: [labels.clone(), labels.clone()].concat(),
        views: 1,
        mixed: None,
        draws: Vec::new(),
        second: None,
    };
    let reference = make();
    let x = || {
        Tensor::<4>::from_data(
            burn::tensor::TensorData::new(a.clone(), [4, 3, 8, 8]),
            &device,
        )
    };
    // Three steps, then one read: the statistics are read (and Burn's per-thread updates
    // folded in) only at evaluation, so every step's update must reach them unread.
    for _ in 0..3 {
        data_parallel_grads(
            &model,
            None,
            &[device.clone(), device.clone()],
            &doubled,
            [3, 8, 8],
            &CrossEntropy,
            (0, 0, 0),
        )
        .unwrap();
        let _ = reference.forward(x());
    }
    assert_close(
        "running statistics after three steps",
        &running_stats(&model),
        &running_stats(&reference),
        1e-6,
    );
}

/// A contrastive model's batch holds its views one after the other: each replica gets its
/// shard's images in every view (not a slice of the stacked views), so BCL on two devices is
/// the mean of BCL on each shard alone, computed by hand from the model's parts (a replica fed
/// the first view three times, say, fails it).
#[test]
fn a_batch_of_views_is_sharded_view_by_view() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    let shape = InputShape {
        channels: 3,
        height: 8,
        width: 8,
    };
    let design = cauda_plugins::models::ContrastDesign {
        dim: 6,
        views: 2,
        centers: true,
    };
    let fresh = || {
        device.seed(5);
        Classifier::new(
            BackboneKind::LeNet,
            HeadKind::Cosine { scale: 30.0 },
            shape,
            4,
            &device,
        )
        .and_then(|m| m.with_contrast(Some(design), &device))
        .unwrap()
    };
    let (n, views, per) = (8, 3, 3 * 8 * 8);
    // View v of image i: its own pixels, different in every view.
    let image = |v: usize, i: usize| -> Vec<f32> {
        (0..per)
            .map(|k| (((v * 31 + i * 17 + k * 7) % 97) as f32 / 48.0) - 1.0)
            .collect()
    };
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 4).collect();
    let batch = |r: std::ops::Range<usize>| Batch {
        pixels: (0..views)
            .flat_map(|v| r.clone().flat_map(move |i| image(v, i)))
            .collect(),
        labels: labels[r.clone()].to_vec(),
        views,
        mixed: None,
        draws: Vec::new(),
        second: None,
    };
    let registry = builtin_registry();
    let ctx = cauda_plugins::registry::BuildContext {
        class_counts: vec![9, 5, 3, 2],
        epochs: 1,
    };
    let params = registry
        .validated(cauda_plugins::registry::Kind::Loss, "bcl", &[])
        .unwrap();
    let loss = registry.loss(&params, None, &ctx).unwrap();
    let (ddp, l) = {
        let m = fresh();
        let devices = [device.clone(), device.clone()];
        let (g, l) = data_parallel_grads(
            &m,
            None,
            &devices,
            &batch(0..n),
            [3, 8, 8],
            loss.as_ref(),
            (0, 0, 0),
        )
        .unwrap();
        (grads_of(&m, &g), l.into_scalar::<f32>())
    };
    // One shard alone, through the model's public parts rather than the loop's batch code:
    // every view through the backbone, the logits of the first, the heads' embeddings and
    // centers.
    let alone = |r: std::ops::Range<usize>| {
        let m = fresh();
        let k = r.len();
        let x = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(batch(r.clone()).pixels, [views * k, 3, 8, 8]),
            &device,
        );
        let f = m.features(x);
        let heads = m.contrast.as_ref().unwrap();
        let y: Vec<i64> = labels[r].iter().map(|&v| i64::from(v)).collect();
        let y = Tensor::<1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(y, [k]),
            &device,
        );
        let step = cauda_plugins::losses::Step {
            embeddings: Some(heads.embeddings(f.clone(), views)),
            centers: heads.centers(m.head.weight.val()),
            ..cauda_plugins::losses::Step::plain(m.head.forward(f.narrow(0, 0, k)), y, 0, 0)
        };
        let l = cauda_plugins::losses::step_loss(loss.as_ref(), step).unwrap();
        let g = GradientsParams::from_grads(l.backward(), &m);
        (grads_of(&m, &g), l.into_scalar::<f32>())
    };
    let (ga, la) = alone(0..4);
    let (gb, lb) = alone(4..n);
    assert_close("loss", &[l], &[(la + lb) / 2.0], 1e-5);
    assert_eq!(ddp.len(), ga.len());
    for (i, ((d, a), b)) in ddp.iter().zip(&ga).zip(&gb).enumerate() {
        let mean: Vec<f32> = a.iter().zip(b).map(|(x, y)| (x + y) / 2.0).collect();
        assert_close(&format!("gradient {i}"), d, &mean, 1e-4);
    }
}

/// BBN on two devices: each replica gets its shard of the main batch and the same shard of the
/// second stream's batch, so the all-reduced gradients are the mean of each shard's own; a
/// second stream in another order gives other gradients (the stream reaches the loss).
#[test]
fn a_second_streams_batch_is_cut_into_the_main_batchs_shards() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    let shape = InputShape {
        channels: 3,
        height: 8,
        width: 8,
    };
    let fresh = || {
        device.seed(11);
        Classifier::new(
            BackboneKind::Bilateral {
                blocks: 1,
                shortcut: Shortcut::A,
            },
            HeadKind::Linear,
            shape,
            4,
            &device,
        )
        .unwrap()
    };
    let (n, per) = (8, 3 * 8 * 8);
    let image = |s: usize, i: usize| -> Vec<f32> {
        (0..per)
            .map(|k| (((s * 53 + i * 17 + k * 7) % 97) as f32 / 48.0) - 1.0)
            .collect()
    };
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 4).collect();
    let labels2: Vec<u32> = (0..n as u32).map(|i| 3 - i % 4).collect();
    let batch = |r: std::ops::Range<usize>, second: &dyn Fn(usize) -> usize| Batch {
        pixels: r.clone().flat_map(|i| image(0, i)).collect(),
        labels: labels[r.clone()].to_vec(),
        views: 1,
        mixed: None,
        draws: Vec::new(),
        second: Some(Stream {
            pixels: r.clone().flat_map(|i| image(1, second(i))).collect(),
            labels: r.clone().map(|i| labels2[second(i)]).collect(),
            draws: Vec::new(),
        }),
    };
    let registry = builtin_registry();
    let ctx = cauda_plugins::registry::BuildContext {
        class_counts: vec![9, 5, 3, 2],
        epochs: 4,
    };
    let params = registry
        .validated(cauda_plugins::registry::Kind::Loss, "bbn", &[])
        .unwrap();
    let loss = registry.loss(&params, None, &ctx).unwrap();
    let grads = |devices: usize, b: &Batch| {
        let m = fresh();
        let (g, l) = data_parallel_grads(
            &m,
            None,
            &vec![device.clone(); devices],
            b,
            [3, 8, 8],
            loss.as_ref(),
            (1, 0, 0),
        )
        .unwrap();
        (grads_of(&m, &g), l.into_scalar::<f32>())
    };
    let same = |i: usize| i;
    let (ddp, l) = grads(2, &batch(0..n, &same));
    let (ga, la) = grads(1, &batch(0..4, &same));
    let (gb, lb) = grads(1, &batch(4..n, &same));
    assert_close("loss", &[l], &[(la + lb) / 2.0], 1e-5);
    assert_eq!(ddp.len(), ga.len());
    for (i, ((d, a), b)) in ddp.iter().zip(&ga).zip(&gb).enumerate() {
        let mean: Vec<f32> = a.iter().zip(b).map(|(x, y)| (x + y) / 2.0).collect();
        assert_close(&format!("gradient {i}"), d, &mean, 1e-4);
    }
    let reversed = |i: usize| n - 1 - i;
    let (other, _) = grads(2, &batch(0..n, &reversed));
    let differs = other
        .iter()
        .zip(&ddp)
        .any(|(o, d)| o.iter().zip(d).any(|(x, y)| (x - y).abs() > 1e-4));
    assert!(differs, "the second stream's order changed no gradient");
}
