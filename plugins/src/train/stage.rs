//! One training stage: per epoch, ask the sampler for the order, stream batches, step the
//! optimizer, evaluate every `eval_every` epochs, report the epoch and checkpoint. Stage 1 is the
//! main training; decoupled methods run a second stage on the stage-1 model.

use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

use super::batches::{EpochPlan, for_each_batch};
use super::checkpoint::{Checkpoint, CheckpointHeader};
use super::evaluate;
use super::record::{EpochRecord, EvalRecord};
use super::schedule::learning_rate;
use super::teacher::Teacher;
use super::{Context, EventSink, TrainError};
use crate::augment::BatchMixer;
use crate::augment::color_jitter::ColorJitter;
use crate::augment::imagenet::TrainTransform;
use crate::losses::Loss;

use crate::models::Classifier;
use crate::samplers::Sampler;
use crate::spec::{OptimizerSpec, ScheduleSpec};

/// XORed into an epoch's seed for the second sampler stream's order (ChaCha8 stream `epoch` of
/// another key than the main order's).
pub const SECOND_STREAM_KEY: u64 = 0x5EC0_4D57_2EA4_0000;

/// The plugins and hyper-parameters of one stage.
#[derive(Clone)]
pub struct StageSetup {
    pub stage: u8,
    pub epochs: usize,
    /// Global number of this stage's first epoch (stage 2 continues after stage 1).
    pub epoch_offset: usize,
    pub sampler: Arc<dyn Sampler>,
    /// The sampler of a second stream beside each batch (`rebalance.second_sampler`, BBN's
    /// re-balancing branch); stage 1 only.
    pub second_sampler: Option<Arc<dyn Sampler>>,
    pub loss: Arc<dyn Loss>,
    pub mixer: Option<Arc<dyn BatchMixer>>,
    pub crop_pad: Option<usize>,
    pub optimizer: OptimizerSpec,
    pub schedule: ScheduleSpec,
    /// MaxNorm threshold applied to the classifier after every step (weight balancing).
    pub max_norm: Option<f32>,
    /// The head's weight and bias step at `lr x head_lr_factor`, the rest at `lr` (MiSLAS).
    pub head_lr_factor: f64,
    /// The frozen teacher whose logits the loss distils (`kd`'s stage 2), kept in every
    /// checkpoint of the stage.
    pub teacher: Option<Teacher>,
}

/// Trains `model` for the stage's epochs from `start` (epochs of this stage already done).
pub fn run_stage(
    ctx: &Context<'_>,
    setup: &StageSetup,
    mut model: Classifier,
    mut optim: ModuleOptimizer,
    start: usize,
    history: &mut Vec<EpochRecord>,
    sink: &mut dyn EventSink,
) -> Result<Classifier, TrainError> {
    let data = ctx.data;
    let train = &data.train;
    let classes = train.num_classes();
    let [c, h, w] = train.shape();
    // Files get the papers' RandomResizedCrop + flip (+ jitter) where in-memory sets get
    // pad-and-crop + flip; both only when crop_flip is on.
    let transform = setup.crop_pad.map(|_| TrainTransform {
        side: h,
        flip: true,
        jitter: ctx.run.color_jitter.map(|s| ColorJitter {
            brightness: s,
            contrast: s,
            saturation: s,
        }),
    });
    let device = ctx.device.clone();
    if start == 0 {
        ctx.record(|r| {
            let trainable = super::lockstep::trainable_names(&model)?;
            r.stage_start(setup.stage, setup.epochs, &model, trainable)
        })?;
    }
    let mut stage_step = 0usize;
    for epoch in start..setup.epochs {
        let lr = learning_rate(setup.optimizer.lr, &setup.schedule, epoch, setup.epochs);
        let global = setup.epoch_offset + epoch;
        let seed = ctx.run.train.seed
            ^ ((setup.stage as u64) << 56)
            ^ (epoch as u64).wrapping_mul(0x9E37_79B9);
        let order = setup
            .sampler
            .epoch_indices(train.labels(), classes, epoch, setup.epochs, seed);
        // The second stream's order: its own key, so it shares no draw with the main order.
        let second = match &setup.second_sampler {
            None => None,
            Some(s) => {
                let o = s.epoch_indices(
                    train.labels(),
                    classes,
                    epoch,
                    setup.epochs,
                    seed ^ SECOND_STREAM_KEY,
                );
                if o.len() != order.len() {
                    return Err(TrainError::StreamLength {
                        sampler: format!("{s:?}"),
                        main: order.len(),
                        second: o.len(),
                    });
                }
                Some(o)
            }
        };
        let plan = EpochPlan {
            set: train,
            order,
            batch_size: ctx.run.train.batch_size,
            crop_pad: setup.crop_pad,
            transform,
            norm: &data.norm,
            mixer: setup.mixer.clone(),
            class_counts: &data.class_counts,
            seed,
            views: model.batch_views(),
            second,
            at: (epoch, setup.epochs),
        };
        let started = Instant::now();
        let mut seen = 0usize;
        let mut loss_sum: Option<Tensor<1>> = None;
        let mut batches = 0usize;
        // The step consumes the model and returns the updated one; holding it in an Option lets
        // the closure move it instead of cloning it (a clone would keep the old parameters alive
        // through the optimizer step).
        let mut slot = Some(model);
        for_each_batch(plan, |batch| -> Result<(), TrainError> {
            let Some(current) = slot.take() else {
                return Err(TrainError::Record(
                    "the model was lost in a failed step".into(),
                ));
            };
            let n = batch.len();
            let recorded = ctx.records_step().then(|| batch.clone());
            // What a stochastic loss draws this step (GCL's clouds): bench/reference.py's
            // `gcl_noise` regenerates it from the same key.
            let key = crate::losses::step_key(
                ctx.run.train.seed,
                usize::from(setup.stage),
                epoch,
                batches,
            );
            let (grads, loss) = if ctx.devices.len() > 1 {
                super::parallel::data_parallel_grads(
                    &current,
                    setup.teacher.as_ref(),
                    &ctx.devices,
                    &batch,
                    [c, h, w],
                    setup.loss.as_ref(),
                    (epoch, stage_step, key),
                )?
            } else {
                let mixed = batch.mixed.as_ref().map(|(b, lam)| (&b[..], &lam[..]));
                let second = batch.second.map(|s| super::parallel::SecondTensors {
                    pixels: s.pixels,
                    labels: s.labels,
                });
                let tensors = super::parallel::BatchTensors {
                    pixels: batch.pixels,
                    shape: [batch.views * n, c, h, w],
                    labels: &batch.labels,
                    mixed,
                    second,
                };
                let loss = super::parallel::batch_loss(
                    &current,
                    setup.teacher.as_ref(),
                    setup.loss.as_ref(),
                    tensors,
                    (epoch, stage_step),
                    crate::losses::StepDraws { key, first_row: 0 },
                    &device,
                )?;
                (GradientsParams::from_grads(loss.backward(), &current), loss)
            };
            let mut next =
                step_with_head_factor(&mut optim, lr, setup.head_lr_factor, current, grads);
            if let Some(t) = setup.max_norm {
                next.head = next.head.max_norm(t);
            }
            let l = loss.detach();
            if let Some(b) = &recorded {
                let entry = super::lockstep::StepEntry {
                    stage: setup.stage,
                    epoch,
                    step: stage_step,
                    lr,
                    loss: l.clone().into_scalar::<f32>(),
                    batch: n,
                    mixed: b.mixed.is_some(),
                    full: true,
                };
                ctx.record(|r| r.step(entry, b, [b.views * n, c, h, w], &next))?;
            }
            stage_step += 1;
            slot = Some(next);
            loss_sum = Some(match loss_sum.take() {
                Some(s) => s + l,
                None => l,
            });
            seen += n;
            batches += 1;
            Ok(())
        })?;
        model =
            slot.ok_or_else(|| TrainError::Record("the model was lost in a failed step".into()))?;
        let train_loss =
            loss_sum.map(|s| s.into_scalar::<f32>()).unwrap_or(f32::NAN) / batches.max(1) as f32;
        let images_per_sec = seen as f32 / started.elapsed().as_secs_f32().max(1e-9);
        let last = epoch + 1 == setup.epochs;
        let eval = if last || (epoch + 1) % ctx.run.train.eval_every == 0 {
            Some(evaluate_model(ctx, &model)?)
        } else {
            None
        };
        let record = EpochRecord {
            stage: setup.stage,
            // Epochs are numbered from 1, contiguously over the stages (the daemon's numbering).
            epoch: global + 1,
            train_loss,
            lr,
            images_per_sec,
            eval,
            extra: Default::default(),
        };
        tracing::info!(
            stage = setup.stage,
            epoch = global + 1,
            train_loss,
            images_per_sec,
            "epoch done"
        );
        sink.on_epoch(&record)?;
        history.push(record);
        let every = ctx.run.train.checkpoint_every;
        if last || (every > 0 && (epoch + 1) % every == 0) {
            let mut ckpt = checkpoint(ctx, setup.stage, epoch + 1, &model, &optim, history)?;
            ckpt.teacher = setup.teacher.as_ref().map(|t| t.record().to_vec());
            sink.on_checkpoint(&ckpt)?;
        }
    }
    Ok(model)
}

/// One optimizer step; with `head_factor != 1` the head's weight and bias take a step at
/// `lr x head_factor` and every other trainable tensor one at `lr` (two steps over disjoint
/// gradients: a tensor without a gradient is left as it is, its momentum untouched).
fn step_with_head_factor(
    optim: &mut ModuleOptimizer,
    lr: f64,
    head_factor: f64,
    model: Classifier,
    mut grads: GradientsParams,
) -> Classifier {
    if head_factor == 1.0 {
        return optim.step(lr, model, grads);
    }
    let mut head = GradientsParams::new();
    if let Some(g) = grads.remove::<2>(model.head.weight.id) {
        head.register(model.head.weight.id, g);
    }
    if let Some(b) = &model.head.bias
        && let Some(g) = grads.remove::<1>(b.id)
    {
        head.register(b.id, g);
    }
    let model = optim.step(lr, model, grads);
    optim.step(lr * head_factor, model, head)
}

/// Test (and validation) metrics of the current model, with post-hoc adjustment when configured.
pub fn evaluate_model(ctx: &Context<'_>, model: &Classifier) -> Result<EvalRecord, TrainError> {
    let m = model.valid();
    let data = ctx.data;
    let device = ctx.eval_device.clone();
    let shift = ctx.posthoc_shift.as_deref();
    let test_f = evaluate::features(&m, &data.test, &data.norm, &device)?;
    let z = evaluate::logits(&m.head, test_f, shift);
    let mut rec = evaluate::score(&z, data.test.labels(), &data.class_counts, &ctx.run.metrics)?;
    if let Some(val) = &data.val {
        let f = evaluate::features(&m, val, &data.norm, &device)?;
        let z = evaluate::logits(&m.head, f, shift);
        rec.val_top1 = Some(
            evaluate::score(&z, val.labels(), &data.class_counts, &ctx.run.metrics)?.test_top1,
        );
    }
    Ok(rec)
}

/// Serializes the model (in validation mode, so BatchNorm statistics are kept) and optimizer.
pub fn checkpoint(
    ctx: &Context<'_>,
    stage: u8,
    epochs_done: usize,
    model: &Classifier,
    optim: &ModuleOptimizer,
    history: &[EpochRecord],
) -> Result<Checkpoint, TrainError> {
    let record = |e: burn::store::RecordError| TrainError::Record(e.to_string());
    let model_bytes = model
        .valid()
        .into_record()
        .into_bytes()
        .map_err(record)?
        .to_vec();
    let optim_bytes = optim.into_bytes().map_err(record)?.to_vec();
    Ok(Checkpoint {
        header: CheckpointHeader {
            config_hash: ctx.config_hash.clone(),
            stage,
            epochs_done,
            history: history.to_vec(),
        },
        model: model_bytes,
        optimizer: optim_bytes,
        teacher: None,
    })
}
