//! End-to-end training tests of the engine on real loops (synthetic data, the embedded digits,
//! and Fashion-MNIST when Debian's package is installed): learning happens, resume continues
//! exactly where a run stopped, decoupled stage 2 keeps the backbone frozen, every preset runs.

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use cauda_plugins::models::{BackboneKind, Classifier, HeadKind, InputShape};
use cauda_plugins::registry::builtin_registry;
use cauda_plugins::spec::{ExperimentSpec, PresetBook, ResolvedRun};
use cauda_plugins::train::{self, Checkpoint, EpochRecord, EventSink, RunSummary, TrainError};

#[derive(Default)]
struct Collect {
    epochs: Vec<EpochRecord>,
    checkpoints: Vec<Checkpoint>,
}

impl EventSink for Collect {
    fn on_epoch(&mut self, record: &EpochRecord) -> Result<(), TrainError> {
        self.epochs.push(record.clone());
        Ok(())
    }
    fn on_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), TrainError> {
        self.checkpoints.push(checkpoint.clone());
        Ok(())
    }
}

fn spec(method: &str, extra: &str) -> ResolvedRun {
    spec_on(method, "mlp", extra).unwrap()
}

fn spec_on(method: &str, backbone: &str, extra: &str) -> Result<ResolvedRun, String> {
    let text = format!(
        r#"
name = "t"
method = "{method}"
[data]
format = "synthetic"
imbalance = {{ profile = "exp", ratio = 10 }}
val_per_class = 5
synthetic = {{ num_classes = 5, per_class_train = 60, per_class_test = 20, seed = 3 }}
[model]
backbone = "{backbone}"
[train]
epochs = 4
batch_size = 32
optimizer = {{ name = "sgd", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 }}
{extra}
"#
    );
    let parsed = ExperimentSpec::parse("test.toml", &text).unwrap();
    parsed
        .resolve("test.toml", &PresetBook::builtin(), &builtin_registry())
        .map_err(|e| e.to_string())
}

fn run(r: &ResolvedRun, resume: Option<Checkpoint>) -> (RunSummary, Collect) {
    let data = train::prepare(&r.data).unwrap();
    let mut sink = Collect::default();
    let summary = train::train(
        r,
        &data,
        &builtin_registry(),
        &Device::default(),
        resume,
        &mut sink,
    )
    .unwrap();
    (summary, sink)
}

#[test]
fn a_run_learns_and_reports_every_epoch() {
    let (summary, sink) = run(&spec("ce", ""), None);
    assert_eq!(
        sink.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "numbered from 1"
    );
    assert!(
        sink.epochs[3].train_loss < sink.epochs[0].train_loss,
        "{:?}",
        sink.epochs
    );
    assert!(
        summary.last.test_top1 > 0.6,
        "synthetic classes are easy: {}",
        summary.last.test_top1
    );
    assert_eq!(
        summary.class_counts[0], 55,
        "60 per class minus 5 validation images"
    );
    assert!(summary.val_selected_top1.is_some());
    assert_eq!(sink.checkpoints.len(), 4, "checkpoint_every = 1");
}

#[test]
fn a_resumed_run_continues_exactly_where_it_stopped() {
    let r = spec("ce", "");
    let (full, all) = run(&r, None);
    let at_two = all.checkpoints[1].clone();
    assert_eq!(at_two.header.epochs_done, 2);
    let (resumed, rest) = run(
        &r,
        Some(Checkpoint::from_bytes(&at_two.to_bytes()).unwrap()),
    );
    assert_eq!(
        rest.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        vec![3, 4]
    );
    for (a, b) in all.epochs[2..].iter().zip(&rest.epochs) {
        assert!(
            (a.train_loss - b.train_loss).abs() < 1e-5,
            "{} vs {}",
            a.train_loss,
            b.train_loss
        );
        assert_eq!(
            a.eval.as_ref().unwrap().test_top1,
            b.eval.as_ref().unwrap().test_top1
        );
    }
    assert_eq!(full.last.test_top1, resumed.last.test_top1);
    assert_eq!(resumed.epochs, 4, "history carried in the checkpoint");
}

/// GCL draws its clouds from a key of (seed, stage, epoch, batch in the epoch), so a run resumed
/// in stage 1 draws what the uninterrupted run drew, through its classifier stage too.
#[test]
fn a_resumed_gcl_run_draws_the_same_clouds() {
    let r = spec("gcl", "");
    let (full, all) = run(&r, None);
    let at_two = all.checkpoints[1].clone();
    assert_eq!((at_two.header.stage, at_two.header.epochs_done), (1, 2));
    let (resumed, rest) = run(
        &r,
        Some(Checkpoint::from_bytes(&at_two.to_bytes()).unwrap()),
    );
    assert_eq!(rest.epochs.len(), all.epochs.len() - 2);
    assert!(
        all.epochs.iter().any(|e| e.stage == 2),
        "the classifier stage ran"
    );
    for (a, b) in all.epochs[2..].iter().zip(&rest.epochs) {
        assert_eq!((a.stage, a.epoch), (b.stage, b.epoch));
        assert!(
            (a.train_loss - b.train_loss).abs() < 1e-5,
            "epoch {}: {} vs {}",
            a.epoch,
            a.train_loss,
            b.train_loss
        );
    }
    assert_eq!(full.last.test_top1, resumed.last.test_top1);
}

#[test]
fn a_checkpoint_of_another_config_is_refused() {
    let (_, all) = run(&spec("ce", ""), None);
    let other = spec("focal", "");
    let data = train::prepare(&other.data).unwrap();
    let err = train::train(
        &other,
        &data,
        &builtin_registry(),
        &Device::default(),
        all.checkpoints.last().cloned(),
        &mut Collect::default(),
    );
    assert!(matches!(err, Err(TrainError::ForeignCheckpoint { .. })));
}

fn load(ck: &Checkpoint, lws: bool) -> Classifier {
    let device = Device::default();
    let input = InputShape {
        channels: 1,
        height: 8,
        width: 8,
    };
    let mut m = Classifier::new(BackboneKind::Mlp, HeadKind::Linear, input, 5, &device).unwrap();
    if lws {
        m.head = m.head.with_lws_scales(&device);
    }
    m.load_record(ModuleRecord::from_bytes(Bytes::from_bytes_vec(ck.model.clone())).unwrap())
}

fn floats(m: &Classifier) -> (Vec<f32>, Vec<f32>) {
    let x = burn::tensor::Tensor::<4>::ones([2, 1, 8, 8], &Device::default());
    let f = m
        .features(x.clone())
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    let z = m.forward(x).into_data().try_into_vec::<f32>().unwrap();
    (f, z)
}

#[test]
fn crt_retrains_the_classifier_on_a_frozen_backbone() {
    let (summary, sink) = run(
        &spec("crt", "[module]\nstage2 = { name = \"crt\", epochs = 2 }"),
        None,
    );
    let stages: Vec<(u8, usize)> = sink.epochs.iter().map(|e| (e.stage, e.epoch)).collect();
    assert_eq!(stages, vec![(1, 1), (1, 2), (1, 3), (1, 4), (2, 5), (2, 6)]);
    let after_stage1 = load(&sink.checkpoints[3], false);
    let after_stage2 = load(sink.checkpoints.last().unwrap(), false);
    let (f1, z1) = floats(&after_stage1);
    let (f2, z2) = floats(&after_stage2);
    assert_eq!(f1, f2, "the backbone must not change in stage 2");
    assert_ne!(z1, z2, "the classifier must change in stage 2");
    assert_eq!(summary.epochs, 6);
}

#[test]
fn lws_learns_only_the_scales() {
    let (_, sink) = run(
        &spec("lws", "[module]\nstage2 = { name = \"lws\", epochs = 2 }"),
        None,
    );
    let before = load(&sink.checkpoints[3], false);
    let after = load(sink.checkpoints.last().unwrap(), true);
    let w = |m: &Classifier| {
        m.head
            .weight
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    };
    assert_eq!(w(&before), w(&after), "LWS keeps the classifier weights");
    let scales = after
        .head
        .scales
        .as_ref()
        .unwrap()
        .val()
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    assert!(
        scales.iter().any(|s| (s - 1.0).abs() > 1e-4),
        "scales moved: {scales:?}"
    );
}

#[test]
fn tau_norm_is_chosen_on_validation_and_reported_for_every_tau() {
    let (summary, sink) = run(&spec("tau-norm", ""), None);
    assert!(sink.epochs.iter().all(|e| e.stage == 1));
    let sweep = summary.tau_sweep.unwrap();
    assert_eq!(sweep.taus.len(), 21);
    let val = sweep.val_top1.unwrap();
    let best = val.iter().cloned().fold(f32::MIN, f32::max);
    let i = sweep.taus.iter().position(|&t| t == sweep.chosen).unwrap();
    assert_eq!(val[i], best, "tau picked by validation accuracy");
    assert_eq!(summary.last.test_top1, sweep.test_top1[i]);
}

#[test]
fn every_builtin_preset_trains() {
    for preset in PresetBook::builtin().names() {
        // The expert presets (RIDE, SADE) and BBN split a CIFAR ResNet: they train on ResNet-8.
        let r = spec_on(preset, "mlp", "")
            .or_else(|e| {
                assert!(e.contains("only the CIFAR ResNets"), "{preset}: {e}");
                spec_on(preset, "resnet8", "")
            })
            .unwrap();
        let r = ResolvedRun {
            train: cauda_plugins::spec::TrainSection {
                epochs: 2,
                ..r.train.clone()
            },
            ..r
        };
        let (summary, sink) = run(&r, None);
        assert!(
            summary.last.test_top1.is_finite() && summary.last.test_top1 > 0.0,
            "{preset}"
        );
        assert!(
            sink.epochs.iter().all(|e| e.train_loss.is_finite()),
            "{preset}: {:?}",
            sink.epochs
        );
        // SADE's test-time aggregation: the preset's runs learn weights on all eleven shifted
        // test sets (summing to 1, at most 5 epochs); no other preset's run has it.
        if r.test_time_aggregation.is_some() {
            assert_eq!(summary.test_time_aggregation.len(), 11, "{preset}");
            for a in &summary.test_time_aggregation {
                let sum: f32 = a.weights.iter().sum();
                assert!(
                    a.weights.len() == 3 && (sum - 1.0).abs() < 1e-5,
                    "{preset} {}: {:?}",
                    a.distribution,
                    a.weights
                );
                assert!((1..=5).contains(&a.epochs) && a.images > 0, "{preset}");
                assert!((0.0..=1.0).contains(&a.top1), "{preset}");
            }
        } else {
            assert!(summary.test_time_aggregation.is_empty(), "{preset}");
        }
    }
    assert!(
        spec_on("sade", "resnet8", "")
            .unwrap()
            .test_time_aggregation
            .is_some(),
        "the preset sade aggregates its experts at test time"
    );
}

#[test]
fn embedded_digits_lt_trains_to_high_accuracy() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/digits-ce.toml"
    ))
    .unwrap();
    let r = ExperimentSpec::parse("digits-ce.toml", &text).unwrap();
    let r = r
        .resolve(
            "digits-ce.toml",
            &PresetBook::builtin(),
            &builtin_registry(),
        )
        .unwrap();
    let (summary, _) = run(&r, None);
    assert_eq!(
        summary.class_counts,
        vec![143, 113, 88, 68, 52, 40, 31, 24, 18, 14]
    );
    assert!(summary.last.test_top1 > 0.85, "{}", summary.last.test_top1);
}

#[test]
fn fashion_mnist_lt_trains_when_installed() {
    let dir = "/usr/share/datasets/fashion-mnist";
    if !std::path::Path::new(dir)
        .join("train-images-idx3-ubyte.gz")
        .exists()
    {
        let why = format!("{dir} is absent (apt-get install dataset-fashion-mnist)");
        assert!(
            std::env::var_os("CAUDA_REQUIRE_ALL").is_none(),
            "CAUDA_REQUIRE_ALL is set and Fashion-MNIST is missing: {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let text = format!(
        "name = \"f\"\n[data]\nformat = \"idx\"\npath = \"{dir}\"\nimbalance = {{ profile = \"exp\", ratio = 10 }}\nmax_per_class = 100\n[model]\nbackbone = \"mlp\"\n[train]\nepochs = 5\nbatch_size = 32\neval_every = 5\n"
    );
    let r = ExperimentSpec::parse("f.toml", &text).unwrap();
    let r = r
        .resolve("f.toml", &PresetBook::builtin(), &builtin_registry())
        .unwrap();
    let (summary, _) = run(&r, None);
    assert_eq!(summary.class_counts[0], 100);
    assert_eq!(summary.class_counts[9], 10);
    assert!(summary.last.test_top1 > 0.5, "{}", summary.last.test_top1);
}

#[test]
fn decoupled_methods_share_one_stage_1_and_start_stage_2_from_its_checkpoint() {
    let crt = spec("crt", "");
    let lws = spec("lws", "");
    let tau = spec("tau-norm", "");
    let first = train::stage1_run(&crt, &builtin_registry()).expect("crt splits");
    assert!(first.stage2.is_none());
    for other in [&lws, &tau] {
        let theirs = train::stage1_run(other, &builtin_registry()).expect("splits");
        assert_eq!(
            train::config_hash(&theirs),
            train::config_hash(&first),
            "one shared stage 1"
        );
    }
    assert!(train::stage1_run(&spec("ce", ""), &builtin_registry()).is_none());
    assert!(train::stage1_run(&spec("weight-balancing", ""), &builtin_registry()).is_none());
    // The stage-1 run is plain cross-entropy with instance sampling: the `ce` preset's run.
    assert_eq!(
        train::config_hash(&first),
        train::config_hash(&spec("ce", ""))
    );

    let (_, stage1) = run(&first, None);
    let last = stage1.checkpoints.last().unwrap().clone();
    assert_eq!((last.header.stage, last.header.epochs_done), (1, 4));
    for method in [&crt, &lws, &tau] {
        let (whole, _) = run(method, None);
        let (split, sink) = run(method, Some(last.clone()));
        assert!(
            sink.epochs.iter().all(|e| e.stage == 2),
            "stage 1 is not trained again"
        );
        assert_eq!(split.epochs, whole.epochs, "{}", method.method);
        assert!(
            // Same recipe; float sums may differ in order under parallel tests (100 test images).
            (split.last.test_top1 - whole.last.test_top1).abs() <= 0.1,
            "{}: split {} vs whole {}",
            method.method,
            split.last.test_top1,
            whole.last.test_top1
        );
    }
    // A stage-1 checkpoint that is not final, or of another stage 1, is refused.
    let early = stage1.checkpoints[1].clone();
    let data = train::prepare(&crt.data).unwrap();
    let err = train::train(
        &crt,
        &data,
        &builtin_registry(),
        &Device::default(),
        Some(early),
        &mut Collect::default(),
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::ForeignCheckpoint { .. }), "{err}");
}

/// `kd`: the shared stage 1 (the `ce` run itself) is the teacher; stage 2 trains a new model
/// for the run's epochs and keeps the teacher in every checkpoint, so a run killed in stage 2
/// resumes from its own checkpoint to the same result as a run that never stopped.
#[test]
fn kd_distils_its_shared_stage_1_and_resumes_with_its_teacher() {
    let kd = spec("kd", "");
    let first = train::stage1_run(&kd, &builtin_registry()).expect("kd splits");
    assert_eq!(
        train::config_hash(&first),
        train::config_hash(&spec("ce", "")),
        "the teacher is the ce run"
    );
    let dive = spec("kd-balanced-softmax", "");
    assert_eq!(
        train::config_hash(&train::stage1_run(&dive, &builtin_registry()).unwrap()),
        train::config_hash(&spec("balanced-softmax", "")),
        "a Balanced Softmax teacher for a Balanced Softmax student"
    );

    // Progress counts the student's epochs (the run's), as the stage-2 plans say.
    let reg = builtin_registry();
    let crt = spec("crt", "[module]\nstage2 = { name = \"crt\", epochs = 2 }");
    for (r, total) in [
        (&kd, 8),
        (&crt, 6),
        (&spec("tau-norm", ""), 4),
        (&spec("ce", ""), 4),
    ] {
        assert_eq!(train::epochs_total(r, &reg), total, "{}", r.method);
    }

    let (_, stage1) = run(&first, None);
    let teacher = stage1.checkpoints.last().unwrap().clone();
    let (whole, all) = run(&kd, Some(teacher.clone()));
    assert_eq!(
        all.epochs
            .iter()
            .map(|e| (e.stage, e.epoch))
            .collect::<Vec<_>>(),
        [(2, 5), (2, 6), (2, 7), (2, 8)],
        "the student trains for the run's epochs; stage 1 is not trained again"
    );
    assert_eq!(whole.epochs, 8);
    for ck in &all.checkpoints {
        assert_eq!(ck.header.stage, 2);
        assert_eq!(
            ck.teacher.as_deref(),
            Some(&teacher.model[..]),
            "every stage-2 checkpoint keeps the stage-1 model as the teacher"
        );
    }
    // The student starts from scratch, not from the teacher's weights.
    let teacher_loss = stage1.epochs.last().unwrap().train_loss;
    assert!(
        all.epochs[0].train_loss > 2.0 * teacher_loss,
        "student's first epoch {} vs the teacher's last {teacher_loss}",
        all.epochs[0].train_loss
    );

    let at_two = all.checkpoints[1].clone();
    assert_eq!((at_two.header.stage, at_two.header.epochs_done), (2, 2));
    let (resumed, rest) = run(
        &kd,
        Some(Checkpoint::from_bytes(&at_two.to_bytes()).unwrap()),
    );
    assert_eq!(
        rest.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        [7, 8]
    );
    for (a, b) in all.epochs[2..].iter().zip(&rest.epochs) {
        assert!(
            (a.train_loss - b.train_loss).abs() < 1e-5,
            "{} vs {}",
            a.train_loss,
            b.train_loss
        );
        assert_eq!(
            a.eval.as_ref().unwrap().test_top1,
            b.eval.as_ref().unwrap().test_top1
        );
    }
    assert_eq!(resumed.last.test_top1, whole.last.test_top1);
    assert_eq!(resumed.epochs, 8);

    // A stage-2 checkpoint without its teacher is refused, not distilled from another model.
    let bare = Checkpoint {
        teacher: None,
        ..at_two
    };
    let data = train::prepare(&kd.data).unwrap();
    let err = train::train(
        &kd,
        &data,
        &builtin_registry(),
        &Device::default(),
        Some(bare),
        &mut Collect::default(),
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::NoTeacher { .. }), "{err}");
}

#[test]
fn the_summary_carries_the_confusion_matrix_last_is_scored_on() {
    // Post-hoc logit adjustment, a tau-normalized head and a re-trained stage 2 change the
    // final predictions: the matrix must be of those, as `last` is.
    let crt = "[module]\nstage2 = { name = \"crt\", epochs = 2 }";
    for (method, extra) in [
        ("ce", ""),
        ("logit-adjust-posthoc", ""),
        ("tau-norm", ""),
        ("crt", crt),
        ("ncm", ""),
        (
            "mislas",
            "[module]\nstage2 = { name = \"mislas\", epochs = 2 }",
        ),
    ] {
        let (summary, _) = run(&spec(method, extra), None);
        let m = summary
            .confusion
            .as_ref()
            .unwrap_or_else(|| panic!("{method}: no confusion matrix"));
        let k = m.classes;
        assert_eq!((k, m.counts.len()), (5, 25), "{method}");
        let cell = |t: usize, p: usize| m.counts[t * k + p];
        for t in 0..k {
            let row: u64 = (0..k).map(|p| cell(t, p)).sum();
            assert_eq!(row, 20, "{method}: class {t} has 20 test images");
            let acc = (cell(t, t) as f64 / row as f64) as f32;
            assert_eq!(Some(acc), summary.last.per_class[t], "{method}: class {t}");
        }
        let trace: u64 = (0..k).map(|t| cell(t, t)).sum();
        assert_eq!(
            (trace as f64 / 100.0) as f32,
            summary.last.test_top1,
            "{method}: trace / N is the final top-1"
        );
    }
}
