//! The engine on each backend built in: a spec's `[resources] backend` selects the device
//! (`train::run_device`), and with `--features tch` the same epoch, resumed from the same
//! checkpoint, gives the same loss and accuracy on libtorch's CPU device as on flex (within
//! float tolerance: the kernels differ, the data order and the weights do not). Without the
//! feature, asking for `tch` is refused with the feature to build.

use burn::tensor::Device;
use cauda_plugins::registry::builtin_registry;
use cauda_plugins::spec::{ExperimentSpec, PresetBook, ResolvedRun};
use cauda_plugins::train::{self, Backend, DeviceError, Placement};
#[cfg(feature = "tch")]
use cauda_plugins::train::{Checkpoint, EpochRecord, EventSink, TrainError};

#[cfg(feature = "tch")]
#[derive(Default)]
struct Collect {
    epochs: Vec<EpochRecord>,
    checkpoints: Vec<Checkpoint>,
}

#[cfg(feature = "tch")]
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

/// A small ResNet (convolutions, batch norm, pooling) and a re-weighted loss on 3x8x8 images.
fn spec(backend: &str) -> ResolvedRun {
    let text = format!(
        r#"
name = "b"
method = "ce"
[data]
format = "synthetic"
imbalance = {{ profile = "exp", ratio = 10 }}
val_per_class = 4
synthetic = {{ num_classes = 4, per_class_train = 48, per_class_test = 16, channels = 3, seed = 5 }}
[model]
backbone = "resnet8"
[train]
epochs = 2
batch_size = 16
optimizer = {{ name = "sgd", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 }}
[rebalance]
loss = {{ name = "focal" }}
[resources]
backend = "{backend}"
"#
    );
    ExperimentSpec::parse("backends.toml", &text)
        .unwrap()
        .resolve("backends.toml", &PresetBook::builtin(), &builtin_registry())
        .unwrap()
}

#[cfg(feature = "tch")]
fn train_on(run: &ResolvedRun, device: &Device, resume: Option<Checkpoint>) -> Collect {
    let data = train::prepare(&run.data).unwrap();
    let mut sink = Collect::default();
    train::train(run, &data, &builtin_registry(), device, resume, &mut sink).unwrap();
    sink
}

#[test]
fn the_spec_backend_selects_the_device_or_is_refused_when_not_built() {
    let (backend, device) = train::run_device(&spec("flex").resources, None).unwrap();
    assert_eq!((backend, device), (Backend::Flex, Device::flex()));
    let tch = train::run_device(&spec("tch").resources, None);
    match Backend::Tch.is_built() {
        true => assert_eq!(tch.unwrap().0, Backend::Tch),
        false => assert!(
            matches!(&tch, Err(DeviceError::NotBuilt { backend: "tch", .. })),
            "{tch:?}"
        ),
    }
    // A CPU-slot run never lands on a GPU device.
    assert_eq!(Placement::of(&spec("tch").resources), Placement::Cpu);
}

/// Epoch 2 from flex's epoch-1 checkpoint, on flex and on libtorch's CPU device.
#[cfg(feature = "tch")]
#[test]
fn libtorch_cpu_trains_as_flex_does() {
    let flex_run = spec("flex");
    let tch_run = spec("tch");
    assert_eq!(train::config_hash(&flex_run), train::config_hash(&tch_run));
    let flex = train::build_device(Backend::Flex, Placement::Cpu).unwrap();
    let tch = train::build_device(Backend::Tch, Placement::Cpu).unwrap();
    assert_ne!(flex, tch);
    let first = train_on(&flex_run, &flex, None);
    let at_one = first.checkpoints[0].clone();
    assert_eq!(at_one.header.epochs_done, 1);
    let on_flex = train_on(&flex_run, &flex, Some(at_one.clone()));
    let on_tch = train_on(&tch_run, &tch, Some(at_one));
    let (a, b) = (&on_flex.epochs[0], &on_tch.epochs[0]);
    assert_eq!((a.epoch, b.epoch), (2, 2));
    assert!(
        (a.train_loss - b.train_loss).abs() <= 1e-3 * a.train_loss.abs().max(1.0),
        "train loss: flex {} vs tch {}",
        a.train_loss,
        b.train_loss
    );
    let (ea, eb) = (a.eval.as_ref().unwrap(), b.eval.as_ref().unwrap());
    // 64 test images: at most one may flip on a near-tie.
    assert!(
        (ea.test_top1 - eb.test_top1).abs() <= 1.0 / 64.0 + 1e-9,
        "test top-1: flex {} vs tch {}",
        ea.test_top1,
        eb.test_top1
    );
}
