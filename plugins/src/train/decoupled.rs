//! A run's stages: stage 1 (the method's sampler, loss, augmentation and classifier), then the
//! module-improvement step of decoupled methods (Kang et al. ICLR 2020; Alshammari et al. CVPR
//! 2022): cRT re-trains a re-initialized classifier on the frozen backbone with class-balanced
//! sampling; LWS learns per-class scales of the frozen classifier; tau-norm rescales the
//! classifier's weights post hoc; weight balancing re-trains the classifier with a class-balanced
//! loss under MaxNorm after a stage 1 with strong weight decay and MaxNorm; distillation (`kd`)
//! trains a new model with the run's own recipe against the frozen stage-1 model's logits.

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;

use super::record::{RunSummary, TauSweep};
use super::schedule::build_optimizer;
use super::stage::{StageSetup, evaluate_model, run_stage};
use super::teacher::Teacher;
use super::{Checkpoint, Context, EventSink, TrainError, evaluate};
use crate::metrics::{Selected, Selection};
use crate::models::{BackboneKind, Classifier, Head, HeadInit, HeadKind, InputShape};
use crate::registry::{BuildContext, Kind};
use crate::spec::ScheduleSpec;
use crate::stage2::{HeadPlan, KnnVote, Stage2Plan, TrainPlan};

pub fn run_all(
    ctx: &Context<'_>,
    resume: Option<Checkpoint>,
    sink: &mut dyn EventSink,
) -> Result<RunSummary, TrainError> {
    let run = ctx.run;
    let data = ctx.data;
    let reg = ctx.registry;
    let method = run
        .stage2
        .as_ref()
        .map(|s| reg.stage2(&s.params))
        .transpose()?;
    let plan = method.as_ref().map(|m| m.plan());

    let mut optimizer = run.train.optimizer.clone();
    if let Some(wd) = method.as_ref().and_then(|m| m.stage1_weight_decay()) {
        optimizer.weight_decay = wd;
    }
    let bctx = BuildContext {
        class_counts: data.class_counts.clone(),
        epochs: run.train.epochs,
    };
    let setup1 = StageSetup {
        stage: 1,
        epochs: run.train.epochs,
        epoch_offset: 0,
        sampler: reg.sampler(&run.sampler, &bctx)?,
        second_sampler: run
            .second_sampler
            .as_ref()
            .map(|s| reg.sampler(s, &bctx))
            .transpose()?,
        loss: reg.loss(&run.loss, run.drw.as_ref(), &bctx)?,
        mixer: run
            .mixer
            .as_ref()
            .map(|m| reg.mixer(m, &bctx))
            .transpose()?,
        crop_pad: run.crop_flip.then_some(run.pad),
        optimizer: optimizer.clone(),
        schedule: run.train.schedule.clone(),
        // MaxNorm belongs to weight balancing's stage 2 only (the authors' code).
        max_norm: None,
        head_lr_factor: 1.0,
        teacher: None,
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

    let mut model = drawn_model(ctx, run.train.seed)?;
    if ck.is_none() {
        // A run's first step starts from the pretrained backbone (`model.pretrained`).
        model = run.model.load_pretrained(model)?;
    }
    if resume_stage <= 1 {
        let mut optim = build_optimizer(&setup1.optimizer, setup1.optimizer.weight_decay);
        if let Some(ck) = &ck {
            (model, optim) = load(model, optim, ck)?;
        }
        model = run_stage(ctx, &setup1, model, optim, done, &mut history, sink)?;
    }

    let mut tau_sweep = None;
    // A kNN stage 2 classifies by its vote instead of the model's head.
    let mut knn: Option<KnnVote> = None;
    // A post-hoc stage 2 (tau-norm, NCM) changes the classifier without training: the run's
    // last evaluation is of the transformed model.
    let mut post_hoc = false;
    match &plan {
        None => {}
        Some(Stage2Plan::Train(tp)) => {
            let from = if resume_stage == 2 {
                fresh_model(ctx)?
            } else {
                model
            };
            let mut model2 = stage2_model(ctx, tp.head, from)?;
            let setup2 = stage2_setup(ctx, tp, &bctx, &model2)?;
            let mut optim = build_optimizer(&setup2.optimizer, setup2.optimizer.weight_decay);
            let start = if resume_stage == 2 { done } else { 0 };
            if resume_stage == 2
                && let Some(ck) = &ck
            {
                (model2, optim) = load(model2, optim, ck)?;
            }
            model = run_stage(ctx, &setup2, model2, optim, start, &mut history, sink)?;
        }
        Some(Stage2Plan::Distil(dp)) => {
            // The teacher is the stage-1 model, or, in a resumed stage 2, the one its
            // checkpoint kept; the student starts from its own initial weights (and the
            // pretrained backbone when the run has one), or from the checkpoint.
            let mut optim = build_optimizer(&setup1.optimizer, setup1.optimizer.weight_decay);
            let (teacher, student, start) = match ck.as_ref().filter(|_| resume_stage == 2) {
                Some(ck) => {
                    let record = ck.teacher.as_deref().ok_or_else(|| TrainError::NoTeacher {
                        method: run.method.clone(),
                    })?;
                    let teacher = Teacher::from_record(fresh_model(ctx)?, record)?;
                    let student;
                    (student, optim) = load(fresh_model(ctx)?, optim, ck)?;
                    (teacher, student, done)
                }
                None => {
                    let student = drawn_model(ctx, student_seed(run.train.seed))?;
                    let student = run.model.load_pretrained(student)?;
                    (Teacher::new(model)?, student, 0)
                }
            };
            if start == 0 {
                ctx.record(|r| r.teacher(teacher.model()))?;
            }
            let setup2 = StageSetup {
                stage: 2,
                epoch_offset: run.train.epochs,
                loss: dp.loss(setup1.loss.clone())?,
                teacher: Some(teacher),
                ..setup1.clone()
            };
            model = run_stage(ctx, &setup2, student, optim, start, &mut history, sink)?;
        }
        Some(Stage2Plan::NearestClassMean { scale }) => {
            // The lockstep record's "stage 2" of NCM: the model whose features it averages.
            ctx.record(|r| r.stage_start(2, 0, &model, Vec::new()))?;
            model = nearest_class_mean(ctx, *scale, model)?;
            post_hoc = true;
        }
        Some(Stage2Plan::NearestNeighbours { k, temperature }) => {
            // The lockstep record's "stage 2" of kNN: the model whose features it searches.
            ctx.record(|r| r.stage_start(2, 0, &model, Vec::new()))?;
            let f = evaluate::features(&model.valid(), &data.train, &data.norm, &ctx.eval_device)?;
            let classes = model.head.classes();
            knn = Some(KnnVote::new(
                f,
                data.train.labels(),
                classes,
                *k,
                *temperature,
            )?);
            post_hoc = true;
        }
        Some(Stage2Plan::TauNorm { tau }) => {
            // The lockstep record's "stage 2" of tau-norm: the model it transforms.
            ctx.record(|r| r.stage_start(2, 0, &model, Vec::new()))?;
            let (m, sweep) = tau_normalize(ctx, *tau, model)?;
            model = m;
            tau_sweep = Some(sweep);
            post_hoc = true;
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
    let last = match (post_hoc, final_eval, &knn) {
        (false, Some(e), _) => e,
        (_, _, Some(vote)) => evaluate_knn(ctx, &model, vote)?,
        _ => evaluate_model(ctx, &model)?,
    };
    let best_test_top1 = selection
        .best_test()
        .map_or(last.test_top1, |s| s.test_top1.max(last.test_top1));
    let val_selected_top1 = if post_hoc {
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
        let z = match &knn {
            Some(vote) => knn_logits(vote, f, ctx.posthoc_shift.as_deref())?,
            None => evaluate::logits(&m.head, f, ctx.posthoc_shift.as_deref()),
        };
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
    let confusion = match &knn {
        Some(vote) => {
            let f = evaluate::features(&model.valid(), &data.test, &data.norm, &ctx.eval_device)?;
            let z = knn_logits(vote, f, ctx.posthoc_shift.as_deref())?;
            let classes = data.class_counts.len();
            evaluate::confusion(&z, data.test.labels(), classes)?
        }
        None => evaluate::test_confusion(ctx, &model)?,
    };
    // SADE's test-time aggregation of the final model's experts, on the shifted test sets
    // (refused at resolution for kNN and NCM, whose classifier is not the experts' head).
    let test_time_aggregation = match &run.test_time_aggregation {
        Some(settings) => super::test_time::aggregate(ctx, &model, settings)?,
        None => Vec::new(),
    };
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
        test_time_aggregation,
    })
}

/// A freshly initialized model whose weights depend on `seed` only.
fn drawn_model(ctx: &Context<'_>, seed: u64) -> Result<Classifier, TrainError> {
    // Burn draws initial weights from one process-wide RNG: seed it and draw the whole model
    // while no other run in this process can draw from it (tests train several runs at
    // once; a worker process trains one), so a run's initial weights depend on its seed only.
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _init = INIT.lock().unwrap_or_else(|e| e.into_inner());
    ctx.eval_device.seed(seed);
    let model = fresh_model(ctx)?;
    // Burn's initializers are lazy: a parameter draws its values when first read. Read them
    // all now, in the module's order, under the lock: otherwise they are drawn at the first
    // forward pass, in whatever order (and, with data-parallel replicas forking the model,
    // on whichever thread) reads them first.
    model.visit(&mut DrawEveryParameter);
    Ok(model)
}

/// The seed of a distillation student's initial weights: its own draw, not the teacher's
/// (stage 1 drew from the run's seed), tagged by the stage as the sampler's seeds are.
fn student_seed(seed: u64) -> u64 {
    seed ^ (2u64 << 56)
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
    Ok(
        Classifier::new(backbone, head, input, t.num_classes(), &ctx.device)?
            .with_contrast(run.model.contrast, &ctx.device)?,
    )
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
    plan: HeadPlan,
    model: Classifier,
) -> Result<Classifier, TrainError> {
    let Classifier {
        backbone,
        head,
        contrast,
    } = model;
    let backbone = backbone.freeze();
    let head = match plan {
        HeadPlan::Reinit => {
            let kind = if head.cosine_scale > 0.0 {
                HeadKind::Cosine {
                    scale: head.cosine_scale,
                }
            } else {
                HeadKind::Linear
            };
            // PyTorch's default init, as cRT's new `nn.Linear`; an expert model gets a new
            // classifier per expert.
            Head::experts_with_init(
                kind,
                HeadInit::Torch,
                backbone.feature_dim() / head.experts,
                head.classes(),
                head.experts,
                &ctx.device,
            )?
        }
        HeadPlan::LwsScales => head.no_grad().with_lws_scales(&ctx.device),
        HeadPlan::Keep => head,
        HeadPlan::KeepWithScales => head.with_lws_scales(&ctx.device),
        HeadPlan::DisAlign => head.no_grad().with_disalign(&ctx.device)?,
    };
    // The contrastive heads stay (a checkpoint rebuilds the run's whole design) but learn no
    // more: stage 2 trains the classifier.
    let contrast = contrast.map(|c| c.no_grad());
    Ok(Classifier {
        backbone,
        head,
        contrast,
    })
}

/// Stage 2's sampler, loss and optimizer, built through the registry from the method's plan.
fn stage2_setup(
    ctx: &Context<'_>,
    plan: &TrainPlan,
    bctx: &BuildContext,
    model: &Classifier,
) -> Result<StageSetup, TrainError> {
    let run = ctx.run;
    let reg = ctx.registry;
    let bctx2 = BuildContext {
        epochs: plan.epochs,
        ..bctx.clone()
    };
    let sampler = reg.validate(Kind::Sampler, &plan.sampler)?;
    let loss = reg.validate(Kind::Loss, &plan.loss)?;
    let mut optimizer = run.train.optimizer.clone();
    optimizer.lr = plan.lr;
    if let Some(wd) = plan.weight_decay {
        optimizer.weight_decay = wd;
    }
    Ok(StageSetup {
        stage: 2,
        epochs: plan.epochs,
        epoch_offset: run.train.epochs,
        sampler: reg.sampler(&sampler, &bctx2)?,
        second_sampler: None,
        loss: reg.loss(&loss, None, &bctx2)?,
        mixer: match &plan.mixer {
            Some(m) => Some(reg.mixer(&reg.validate(Kind::Mixer, m)?, &bctx2)?),
            None => None,
        },
        crop_pad: run.crop_flip.then_some(run.pad),
        optimizer,
        schedule: ScheduleSpec {
            name: "cosine".into(),
            warmup_epochs: 0,
            milestones: vec![],
            gamma: 0.1,
        },
        max_norm: plan
            .max_norm_thresh
            .map(|t| model.head.relative_norm_threshold(t)),
        head_lr_factor: plan.head_lr_factor,
        teacher: None,
    })
}

/// NCM: the classifier becomes the means of each class' L2-normalized training features
/// (evaluation mode, no augmentation) as a cosine head of scale `scale`.
fn nearest_class_mean(
    ctx: &Context<'_>,
    scale: f32,
    model: Classifier,
) -> Result<Classifier, TrainError> {
    let data = ctx.data;
    let train = &data.train;
    let classes = model.head.classes();
    let f = evaluate::features(&model.valid(), train, &data.norm, &ctx.eval_device)?;
    let [n, d] = f.dims();
    let f: Vec<f32> = f
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| TrainError::Record(format!("training features: {e:?}")))?;
    let mut sums = vec![0.0f64; classes * d];
    let mut counts = vec![0usize; classes];
    for (row, &label) in f.chunks_exact(d).zip(train.labels()).take(n) {
        let c = label as usize;
        if c >= classes {
            continue;
        }
        let norm = row
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        for (s, &x) in sums[c * d..(c + 1) * d].iter_mut().zip(row) {
            *s += f64::from(x) / norm;
        }
        counts[c] += 1;
    }
    let means: Vec<f32> = sums
        .chunks_exact(d)
        .zip(&counts)
        .flat_map(|(s, &k)| s.iter().map(move |&x| (x / k.max(1) as f64) as f32))
        .collect();
    let Classifier {
        backbone, contrast, ..
    } = model;
    let mut ncm = Head::new(HeadKind::Cosine { scale }, d, classes, &ctx.device)?;
    ncm.weight = burn::module::Param::from_tensor(burn::tensor::Tensor::<2>::from_data(
        burn::tensor::TensorData::new(means, [classes, d]),
        &ctx.device,
    ));
    Ok(Classifier {
        backbone,
        head: ncm,
        contrast,
    })
}

/// kNN's logits of the features `f`, less the run's post-hoc shift when it has one.
fn knn_logits(
    vote: &KnnVote,
    f: burn::tensor::Tensor<2>,
    shift: Option<&[f32]>,
) -> Result<Vec<f32>, TrainError> {
    let mut z = vote.logits(f)?;
    if let Some(shift) = shift {
        for row in z.chunks_exact_mut(shift.len()) {
            for (v, s) in row.iter_mut().zip(shift) {
                *v -= s;
            }
        }
    }
    Ok(z)
}

/// The run's evaluation (test, validation) with kNN's vote as the classifier.
fn evaluate_knn(
    ctx: &Context<'_>,
    model: &Classifier,
    vote: &KnnVote,
) -> Result<super::record::EvalRecord, TrainError> {
    let data = ctx.data;
    let m = model.valid();
    let shift = ctx.posthoc_shift.as_deref();
    let f = evaluate::features(&m, &data.test, &data.norm, &ctx.eval_device)?;
    let z = knn_logits(vote, f, shift)?;
    let mut rec = evaluate::score(&z, data.test.labels(), &data.class_counts, &ctx.run.metrics)?;
    if let Some(val) = &data.val {
        let f = evaluate::features(&m, val, &data.norm, &ctx.eval_device)?;
        let z = knn_logits(vote, f, shift)?;
        rec.val_top1 = Some(
            evaluate::score(&z, val.labels(), &data.class_counts, &ctx.run.metrics)?.test_top1,
        );
    }
    Ok(rec)
}

/// Tau-normalization with tau chosen on the validation split when there is one (grid 0..=2 in
/// steps of 0.1), else the preset's tau; test accuracy for every tau is reported either way.
fn tau_normalize(
    ctx: &Context<'_>,
    fallback_tau: f32,
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
        None => fallback_tau,
    };
    let Classifier {
        backbone,
        head,
        contrast,
    } = model;
    let head = head.tau_normalized(chosen);
    Ok((
        Classifier {
            backbone,
            head,
            contrast,
        },
        TauSweep {
            taus,
            test_top1,
            val_top1,
            chosen,
        },
    ))
}
