//! A run's stages: stage 1 (the method's sampler, loss, augmentation and classifier), then the
//! module-improvement step of decoupled methods (Kang et al. ICLR 2020; Alshammari et al. CVPR
//! 2022): cRT re-trains a re-initialized classifier on the frozen backbone with class-balanced
//! sampling; LWS learns per-class scales of the frozen classifier; tau-norm rescales the
//! classifier's weights post hoc; weight balancing re-trains the classifier with a class-balanced
//! loss under MaxNorm after a stage 1 with strong weight decay and MaxNorm.

use std::sync::Arc;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;

use super::record::{RunSummary, TauSweep};
use super::schedule::build_optimizer;
use super::stage::{StageSetup, evaluate_model, run_stage};
use super::{Checkpoint, Context, EventSink, TrainError, evaluate};
use crate::metrics::{Selected, Selection};
use crate::models::{BackboneKind, Classifier, Head, HeadKind, InputShape};
use crate::registry::{BuildContext, Built, Family, Params, RegistryError};
use crate::spec::{ScheduleSpec, Stage2Spec};

pub fn run_all(
    ctx: &Context<'_>,
    resume: Option<Checkpoint>,
    sink: &mut dyn EventSink,
) -> Result<RunSummary, TrainError> {
    let run = ctx.run;
    let data = ctx.data;
    let stage2 = run.stage2.as_ref();
    let wb = stage2
        .filter(|s| s.name == "weight-balancing")
        .map(|s| &s.params);

    let mut optimizer = run.train.optimizer.clone();
    if let Some(p) = wb {
        optimizer.weight_decay = p.get("stage1_weight_decay");
    }
    let bctx = BuildContext {
        class_counts: data.class_counts.clone(),
        epochs: run.train.epochs,
    };
    let setup1 = StageSetup {
        stage: 1,
        epochs: run.train.epochs,
        epoch_offset: 0,
        sampler: sampler(ctx, &run.sampler, &bctx)?,
        loss: crate::registry::build_loss(ctx.registry, &run.loss, run.drw.as_ref(), &bctx)?,
        mixer: run
            .mixer
            .as_ref()
            .map(|m| crate::registry::build_mixer(ctx.registry, m, &bctx))
            .transpose()?,
        crop_pad: run.crop_flip.then_some(run.pad),
        optimizer: optimizer.clone(),
        schedule: run.train.schedule.clone(),
        // MaxNorm belongs to weight balancing's stage 2 only (the authors' code).
        max_norm: None,
    };

    let (mut history, resume_stage, done, ck) = match resume {
        Some(ck) => (
            ck.header.history.clone(),
            ck.header.stage,
            ck.header.epochs_done,
            Some(ck),
        ),
        None => (Vec::new(), 1, 0, None),
    };

    let mut model = {
        // Burn draws initial weights from one process-wide RNG: seed it and draw the whole model
        // while no other run in this process can draw from it (tests train several runs at
        // once; a worker process trains one), so a run's initial weights depend on its seed only.
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _init = INIT.lock().unwrap_or_else(|e| e.into_inner());
        ctx.eval_device.seed(run.train.seed);
        let model = fresh_model(ctx)?;
        // Burn's initializers are lazy: a parameter draws its values when first read. Read them
        // all now, in the module's order, under the lock: otherwise they are drawn at the first
        // forward pass, in whatever order (and, with data-parallel replicas forking the model,
        // on whichever thread) reads them first.
        model.visit(&mut DrawEveryParameter);
        model
    };
    if ck.is_none() {
        // A run's first step starts from the pretrained backbone (`model.pretrained`).
        model = run.model.load_pretrained(model)?;
    }
    let stage2_trains = stage2.is_some_and(|s| s.name != "tau-norm");
    if resume_stage <= 1 {
        let mut optim = build_optimizer(&setup1.optimizer, setup1.optimizer.weight_decay);
        if let Some(ck) = &ck {
            (model, optim) = load(model, optim, ck)?;
        }
        model = run_stage(ctx, &setup1, model, optim, done, &mut history, sink)?;
    }

    let mut tau_sweep = None;
    if let Some(s2) = stage2 {
        if stage2_trains {
            let epochs = s2.params.get("epochs") as usize;
            let mut model2 = stage2_model(
                ctx,
                s2,
                if resume_stage == 2 {
                    fresh_model(ctx)?
                } else {
                    model
                },
            )?;
            let setup2 = stage2_setup(ctx, s2, epochs, &bctx, &model2)?;
            let mut optim = build_optimizer(&setup2.optimizer, setup2.optimizer.weight_decay);
            let start = if resume_stage == 2 { done } else { 0 };
            if resume_stage == 2
                && let Some(ck) = &ck
            {
                (model2, optim) = load(model2, optim, ck)?;
            }
            model = run_stage(ctx, &setup2, model2, optim, start, &mut history, sink)?;
        } else {
            // The lockstep record's "stage 2" of tau-norm: the model it transforms.
            ctx.record(|r| r.stage_start(2, 0, &model, Vec::new()))?;
            let (m, sweep) = tau_normalize(ctx, s2, model)?;
            model = m;
            tau_sweep = Some(sweep);
        }
    }

    let last_stage = history.last().map(|r| r.stage).unwrap_or(1);
    let mut selection = Selection::new();
    let mut final_eval = None;
    for r in history.iter().filter(|r| r.stage == last_stage) {
        if let Some(e) = &r.eval {
            selection.update(Selected {
                epoch: r.epoch,
                test_top1: e.test_top1,
                val_top1: e.val_top1,
            });
            final_eval = Some(e.clone());
        }
    }
    let last = match (tau_sweep.is_some(), final_eval) {
        (false, Some(e)) => e,
        _ => evaluate_model(ctx, &model)?,
    };
    let best_test_top1 = selection
        .best_test()
        .map_or(last.test_top1, |s| s.test_top1.max(last.test_top1));
    let val_selected_top1 = if tau_sweep.is_some() {
        last.val_top1.map(|_| last.test_top1)
    } else {
        selection.val_selected().map(|s| s.test_top1)
    };
    ctx.record(|r| {
        let sub = data.test.head(64)?;
        let n = sub.len();
        let (c, h, w) = (sub.channels, sub.height, sub.width);
        let m = model.valid();
        let f = evaluate::features(&m, &sub.clone().into(), &data.norm, &ctx.eval_device)?;
        let z = evaluate::logits(&m.head, f, ctx.posthoc_shift.as_deref());
        let mut x = Vec::with_capacity(n * c * h * w);
        for img in sub.pixels.chunks_exact(c * h * w) {
            data.norm.push(img, h * w, &mut x);
        }
        r.eval(
            &m,
            &x,
            [n, c, h, w],
            &z,
            tau_sweep.as_ref().map(|t| t.chosen),
        )
    })?;
    let ips: Vec<f32> = history
        .iter()
        .filter(|r| r.stage == 1)
        .map(|r| r.images_per_sec)
        .collect();
    // The final model's test confusion matrix (the logits `last` is scored on).
    let confusion = evaluate::test_confusion(ctx, &model)?;
    Ok(RunSummary {
        method: run.method.clone(),
        class_counts: data.class_counts.clone(),
        split_hash: data.split_hash.clone(),
        last,
        best_test_top1,
        val_selected_top1,
        tau_sweep,
        epochs: history.len(),
        images_per_sec: if ips.is_empty() {
            0.0
        } else {
            ips.iter().sum::<f32>() / ips.len() as f32
        },
        confusion,
    })
}

fn sampler(
    ctx: &Context<'_>,
    params: &Params,
    bctx: &BuildContext,
) -> Result<Arc<dyn crate::samplers::Sampler>, TrainError> {
    match ctx.registry.build_params(Family::Sampler, params, bctx)? {
        Built::Sampler(s) => Ok(s),
        _ => Err(RegistryError::Build {
            plugin: params.plugin.clone(),
            message: "not a sampler".into(),
        }
        .into()),
    }
}

/// Reads every float parameter of a module, which makes a lazy initializer draw it.
struct DrawEveryParameter;

impl burn::module::ModuleVisitor for DrawEveryParameter {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<burn::tensor::Tensor<D>>,
    ) {
        let _ = param.val();
    }
}

fn fresh_model(ctx: &Context<'_>) -> Result<Classifier, TrainError> {
    let run = ctx.run;
    let t = &ctx.data.train;
    let [channels, height, width] = t.shape();
    let head = if run.model.head == "cosine" {
        HeadKind::Cosine {
            scale: run.model.head_scale,
        }
    } else {
        HeadKind::Linear
    };
    let backbone = run.backbone_kind().unwrap_or(BackboneKind::LeNet);
    let input = InputShape {
        channels,
        height,
        width,
    };
    Ok(Classifier::new(
        backbone,
        head,
        input,
        t.num_classes(),
        &ctx.device,
    )?)
}

fn load(
    model: Classifier,
    optim: burn::optim::ModuleOptimizer,
    ck: &Checkpoint,
) -> Result<(Classifier, burn::optim::ModuleOptimizer), TrainError> {
    let err = |e: burn::store::RecordError| TrainError::Record(e.to_string());
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(ck.model.clone())).map_err(err)?;
    let model = model.try_load_record(record).map_err(err)?;
    let optim = optim
        .from_bytes(Bytes::from_bytes_vec(ck.optimizer.clone()))
        .map_err(err)?;
    Ok((model, optim))
}

/// The stage-2 model: a frozen backbone and the head the method trains.
fn stage2_model(
    ctx: &Context<'_>,
    s2: &Stage2Spec,
    model: Classifier,
) -> Result<Classifier, TrainError> {
    let Classifier { backbone, head } = model;
    let backbone = backbone.freeze();
    let head = match s2.name.as_str() {
        "crt" => {
            let kind = if head.cosine_scale > 0.0 {
                HeadKind::Cosine {
                    scale: head.cosine_scale,
                }
            } else {
                HeadKind::Linear
            };
            Head::new(kind, backbone.feature_dim(), head.classes(), &ctx.device)?
        }
        "lws" => head.no_grad().with_lws_scales(&ctx.device),
        _ => head,
    };
    Ok(Classifier { backbone, head })
}

fn stage2_setup(
    ctx: &Context<'_>,
    s2: &Stage2Spec,
    epochs: usize,
    bctx: &BuildContext,
    model: &Classifier,
) -> Result<StageSetup, TrainError> {
    let run = ctx.run;
    let p = &s2.params;
    let reg = ctx.registry;
    let bctx2 = BuildContext {
        epochs,
        ..bctx.clone()
    };
    let (sampler_name, loss) = if s2.name == "weight-balancing" {
        let cb =
            crate::registry::validated(reg, Family::Loss, "class-balanced", &[("gamma", 0.0)])?;
        ("instance", cb)
    } else {
        (
            "class-aware",
            crate::registry::validated(reg, Family::Loss, "ce", &[])?,
        )
    };
    let mut optimizer = run.train.optimizer.clone();
    optimizer.lr = p.get("lr");
    if s2.name == "weight-balancing" {
        optimizer.weight_decay = p.get("weight_decay");
    }
    Ok(StageSetup {
        stage: 2,
        epochs,
        epoch_offset: run.train.epochs,
        sampler: sampler(
            ctx,
            &crate::registry::validated(reg, Family::Sampler, sampler_name, &[])?,
            &bctx2,
        )?,
        loss: crate::registry::build_loss(reg, &loss, None, &bctx2)?,
        mixer: None,
        crop_pad: run.crop_flip.then_some(run.pad),
        optimizer,
        schedule: ScheduleSpec {
            name: "cosine".into(),
            warmup_epochs: 0,
            milestones: vec![],
            gamma: 0.1,
        },
        max_norm: (s2.name == "weight-balancing")
            .then(|| model.head.relative_norm_threshold(p.get("thresh") as f32)),
    })
}

/// Tau-normalization with tau chosen on the validation split when there is one (grid 0..=2 in
/// steps of 0.1), else the preset's tau; test accuracy for every tau is reported either way.
fn tau_normalize(
    ctx: &Context<'_>,
    s2: &Stage2Spec,
    model: Classifier,
) -> Result<(Classifier, TauSweep), TrainError> {
    let data = ctx.data;
    let m = model.valid();
    let device = ctx.eval_device.clone();
    let taus: Vec<f32> = (0..=20).map(|i| i as f32 / 10.0).collect();
    let test_f = evaluate::features(&m, &data.test, &data.norm, &device)?;
    let val_f = data
        .val
        .as_ref()
        .map(|v| evaluate::features(&m, v, &data.norm, &device))
        .transpose()?;
    let shift = ctx.posthoc_shift.as_deref();
    let acc = |f: &burn::tensor::Tensor<2>, labels: &[u32], tau: f32| {
        let z = evaluate::logits(&m.head.tau_normalized(tau), f.clone(), shift);
        // Only top-1 is read for each of the 21 taus: not the whole score (top-5, calibration).
        let classes = data.class_counts.len();
        crate::metrics::argmax(&z, classes)
            .and_then(|p| crate::metrics::class_accuracy(&p, labels, classes))
            .map(|(top1, _)| top1.unwrap_or(0.0) as f32)
    };
    let test_top1 = taus
        .iter()
        .map(|&t| acc(&test_f, data.test.labels(), t))
        .collect::<Result<Vec<f32>, _>>()?;
    let val_top1: Option<Vec<f32>> = match (&val_f, &data.val) {
        (Some(f), Some(v)) => Some(
            taus.iter()
                .map(|&t| acc(f, v.labels(), t))
                .collect::<Result<Vec<f32>, _>>()?,
        ),
        _ => None,
    };
    let chosen = match &val_top1 {
        Some(v) => {
            let mut best = 0;
            for (i, &a) in v.iter().enumerate() {
                if a > v[best] {
                    best = i;
                }
            }
            taus[best]
        }
        None => s2.params.get("tau") as f32,
    };
    let Classifier { backbone, head } = model;
    let head = head.tau_normalized(chosen);
    Ok((
        Classifier { backbone, head },
        TauSweep {
            taus,
            test_top1,
            val_top1,
            chosen,
        },
    ))
}
