//! SADE's test-time self-supervised aggregation (Zhang et al., "Self-Supervised Aggregation of
//! Diverse Experts for Test-Agnostic Long-Tailed Recognition", NeurIPS 2022, Sec. 4.2), run after
//! the final evaluation of a model with experts when `evaluation.test_time_aggregation` asks: for
//! each of the eleven shifted test sets, the experts' weights are learned on its unlabeled images
//! by making two augmented views' predictions agree, then the set is scored with them.
//!
//! Transductive, as the paper states it (and its ImageNet script runs it): each set adapts on the
//! very test images it is scored on ([`ShiftedTestSets`], drawn from the run's seed with SADE's
//! per-class counts), labels unused until the scoring. The model is frozen, so every image's
//! experts' logits are computed once for the clean image and once per (epoch, view) augmented
//! draw, and the eleven fits share those draws: each set reads the logits of its own images, so
//! it sees exactly the views it would have drawn alone, only the same ones as the other sets for
//! the images they share. The views are the run's own training augmentation of in-memory images
//! (pad-and-crop with `augment.pad`, and a horizontal flip) or files (random resized crop, flip,
//! `augment.color_jitter`), not SADE's stronger one (colour jitter, grayscale and blur added);
//! a run that trains without crop+flip still gets it here, as two identical views would teach
//! nothing. A post-hoc logit shift applies to every expert's logits (the weights sum to 1, so the
//! aggregate is shifted by it once). Memory: three `N x E x C` float arrays.

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};

use super::aggregation::{AggregationFit, ExpertLogits};
use super::batches::{EpochPlan, for_each_batch};
use super::record::AggregatedDistribution;
use super::{Context, TrainError, evaluate};
use crate::augment::color_jitter::ColorJitter;
use crate::augment::imagenet::TrainTransform;
use crate::data::shuffle::{shuffle, stream_rng};
use crate::metrics::{self, ShiftedTestSets, ShotThresholds, TEST_AGNOSTIC};
use crate::models::Classifier;
use crate::spec::TestTimeAggregation;

/// Images per forward pass of the augmented views (each gives two).
const VIEW_BATCH: usize = 256;
/// XORed into the run's seed for the views' crops and flips of each epoch.
const VIEWS_KEY: u64 = 0x5ADE_7E57_0000_0002;
/// XORed into the run's seed for each set's batch order of each epoch.
const ORDER_KEY: u64 = 0x5ADE_7E57_0000_0003;

/// The aggregation's outcome on each of [`TEST_AGNOSTIC`]'s sets, in its order.
pub fn aggregate(
    ctx: &Context<'_>,
    model: &Classifier,
    settings: &TestTimeAggregation,
) -> Result<Vec<AggregatedDistribution>, TrainError> {
    let data = ctx.data;
    let m = model.valid();
    let experts = m.head.experts;
    let classes = data.class_counts.len();
    if experts < 2 {
        return Err(TrainError::Aggregation(format!(
            "the model has {experts} expert(s) and test-time aggregation weighs several"
        )));
    }
    let seed = ctx.run.train.seed;
    let labels = data.test.labels();
    let f = evaluate::features(&m, &data.test, &data.norm, &ctx.eval_device)?;
    let clean = expert_logits(&m, f, ctx.posthoc_shift.as_deref())?;
    let sets = ShiftedTestSets::new(labels, classes, seed);
    let subsets: Vec<Vec<usize>> = TEST_AGNOSTIC
        .iter()
        .map(|d| sets.subset(d, &data.class_counts))
        .collect();
    let mut fits: Vec<AggregationFit> = subsets
        .iter()
        .map(|_| AggregationFit::new(experts, settings))
        .collect();
    for epoch in 0..settings.epochs {
        if fits.iter().all(AggregationFit::done) {
            break;
        }
        let drawn = augmented_views(ctx, &m, epoch, settings.epochs)?;
        let views = [0, 1].map(|v| ExpertLogits {
            values: &drawn[v],
            experts,
            classes,
        });
        for (d, (fit, subset)) in fits.iter_mut().zip(&subsets).enumerate() {
            let mut order = subset.clone();
            let stream = ((d as u64) << 32) | epoch as u64;
            shuffle(&mut order, &mut stream_rng(seed ^ ORDER_KEY, stream));
            fit.epoch(views, &order);
        }
    }
    let clean = ExpertLogits {
        values: &clean,
        experts,
        classes,
    };
    let thr = ShotThresholds {
        many_above: ctx.run.metrics.many_threshold,
        few_below: ctx.run.metrics.few_threshold,
    };
    let uniform = vec![1.0 / experts as f64; experts];
    let mut out = Vec::with_capacity(fits.len());
    for ((dist, fit), subset) in TEST_AGNOSTIC.iter().zip(&fits).zip(&subsets) {
        let weights = fit.weights();
        let sub_labels: Vec<u32> = subset.iter().map(|&i| labels[i]).collect();
        let score = |a: &[f64]| {
            let z = aggregated(clean, subset, a);
            let preds = metrics::argmax(&z, classes)?;
            metrics::class_accuracy(&preds, &sub_labels, classes)
        };
        let (top1, per_class) = score(&weights)?;
        let (mean_top1, _) = score(&uniform)?;
        let groups = metrics::group_accuracy_of(&per_class, &data.class_counts, &thr)?;
        tracing::info!(
            distribution = %dist.name(),
            weights = ?weights,
            epochs = fit.epochs(),
            top1,
            mean_top1,
            "test-time aggregation"
        );
        out.push(AggregatedDistribution {
            distribution: dist.name(),
            weights: weights.iter().map(|&a| a as f32).collect(),
            epochs: fit.epochs(),
            images: subset.len(),
            top1: top1.unwrap_or(0.0) as f32,
            mean_top1: mean_top1.unwrap_or(0.0) as f32,
            many: groups.many,
            medium: groups.medium,
            few: groups.few,
        });
    }
    Ok(out)
}

/// `sum_e a_e z_e` of the images `subset`, row-major `[len, C]`.
fn aggregated(z: ExpertLogits<'_>, subset: &[usize], a: &[f64]) -> Vec<f32> {
    let mut row = vec![0.0; z.classes];
    let mut out = Vec::with_capacity(subset.len() * z.classes);
    for &i in subset {
        z.aggregate_into(i, a, &mut row);
        out.extend(row.iter().map(|&v| v as f32));
    }
    out
}

/// Every expert's logits of the features `f` `[N, E x D]`, image-major `[N, E, C]`, less the
/// post-hoc shift when there is one.
fn expert_logits(
    m: &Classifier,
    f: Tensor<2>,
    shift: Option<&[f32]>,
) -> Result<Vec<f32>, TrainError> {
    let z = m
        .head
        .expert_logits(f)
        .ok_or_else(|| TrainError::Aggregation("the model's head has no experts".into()))?;
    let mut z: Vec<f32> = z
        .swap_dims(0, 1)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| TrainError::Aggregation(format!("expert logits: {e:?}")))?;
    if let Some(shift) = shift {
        for row in z.chunks_exact_mut(shift.len()) {
            for (v, s) in row.iter_mut().zip(shift) {
                *v -= s;
            }
        }
    }
    Ok(z)
}

/// The experts' logits of two augmented views of every test image, drawn for `epoch`: the run's
/// crop+flip (or, for files, its random resized crop, flip and jitter), each view with its own
/// draws, in the test set's order.
fn augmented_views(
    ctx: &Context<'_>,
    m: &Classifier,
    epoch: usize,
    epochs: usize,
) -> Result<[Vec<f32>; 2], TrainError> {
    let data = ctx.data;
    let test = &data.test;
    let run = ctx.run;
    let [c, h, w] = test.shape();
    let plan = EpochPlan {
        set: test,
        order: (0..test.len()).collect(),
        batch_size: VIEW_BATCH,
        crop_pad: Some(run.pad),
        transform: Some(TrainTransform {
            side: h,
            flip: true,
            jitter: run.color_jitter.map(|s| ColorJitter {
                brightness: s,
                contrast: s,
                saturation: s,
            }),
        }),
        norm: &data.norm,
        mixer: None,
        class_counts: &data.class_counts,
        seed: run.train.seed ^ VIEWS_KEY ^ (epoch as u64).wrapping_mul(0x9E37_79B9),
        views: 2,
        second: None,
        at: (epoch, epochs),
    };
    let shift = ctx.posthoc_shift.as_deref();
    let mut views: [Vec<f32>; 2] = [Vec::new(), Vec::new()];
    for_each_batch(plan, |batch| -> Result<(), TrainError> {
        let n = batch.len();
        let x = Tensor::<4>::from_data(
            TensorData::new(batch.pixels, [2 * n, c, h, w]),
            &ctx.eval_device,
        );
        let z = expert_logits(m, m.features(x), shift)?;
        let (first, second) = z.split_at(z.len() / 2);
        views[0].extend_from_slice(first);
        views[1].extend_from_slice(second);
        Ok(())
    })?;
    Ok(views)
}
