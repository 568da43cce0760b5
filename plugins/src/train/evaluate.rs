//! Evaluation: features and logits of a whole split in large batches with the model in
//! validation mode (BatchNorm running statistics, no autodiff), post-hoc logit adjustment, and
//! the LT metrics (overall, per-class, many/medium/few-shot), and the final model's confusion
//! matrix.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::batches::Normalizer;
use super::record::{ConfusionRecord, EvalRecord, MAX_CONFUSION_CLASSES};
use super::{Context, TrainError};
use crate::data::{DataError, FileSet, ImageSet, Images};
use crate::metrics::{self, ShotThresholds};
use crate::models::{Classifier, Head};
use crate::spec::MetricsSection;

const EVAL_BATCH: usize = 1024;
/// Images per evaluation batch of files (224x224: 77 MB of f32 input).
const EVAL_FILES_BATCH: usize = 128;

/// Backbone features of every image of `set`, in order, as one `[N, D]` tensor.
pub fn features(
    model: &Classifier,
    set: &Images,
    norm: &Normalizer,
    device: &Device,
) -> Result<Tensor<2>, DataError> {
    match set {
        Images::Memory(s) => Ok(memory_features(model, s, norm, device)),
        Images::Files(f) => file_features(model, f, norm, device),
    }
}

/// Features of files: batches decoded on the pool one batch ahead of the forward pass.
fn file_features(
    model: &Classifier,
    files: &FileSet,
    norm: &Normalizer,
    device: &Device,
) -> Result<Tensor<2>, DataError> {
    let n = files.len();
    let side = files.side;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::scope(|s| {
        s.spawn(move || {
            for start in (0..n).step_by(EVAL_FILES_BATCH) {
                let end = (start + EVAL_FILES_BATCH).min(n);
                let batch = super::stream::eval_batch(files, start..end, norm);
                let failed = batch.is_err();
                if tx.send((end - start, batch)).is_err() || failed {
                    return;
                }
            }
        });
        // Owned here, so an early return drops it and the producer's next send fails.
        let rx = rx;
        let mut parts = Vec::new();
        for (len, px) in rx.iter() {
            let x = Tensor::<4>::from_data(TensorData::new(px?, [len, 3, side, side]), device);
            parts.push(model.features(x));
        }
        if parts.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: no image to evaluate",
                files.list.display()
            )));
        }
        Ok(Tensor::cat(parts, 0))
    })
}

/// Features of an in-memory set, in large batches.
fn memory_features(
    model: &Classifier,
    set: &ImageSet,
    norm: &Normalizer,
    device: &Device,
) -> Tensor<2> {
    let (c, h, w) = (set.channels, set.height, set.width);
    let chw = c * h * w;
    let n = set.labels.len();
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + EVAL_BATCH).min(n);
        let mut px = Vec::with_capacity((end - start) * chw);
        for img in set.pixels[start * chw..end * chw].chunks_exact(chw) {
            norm.push(img, h * w, &mut px);
        }
        let x = Tensor::<4>::from_data(TensorData::new(px, [end - start, c, h, w]), device);
        parts.push(model.features(x));
        start = end;
    }
    Tensor::cat(parts, 0)
}

/// Logits of `features` through `head`, minus `tau * log pi` when post-hoc adjusted.
pub fn logits(head: &Head, features: Tensor<2>, posthoc: Option<&[f32]>) -> Vec<f32> {
    let mut z = head.forward(features);
    if let Some(shift) = posthoc {
        let device = z.device();
        let s = Tensor::<1>::from_data(TensorData::new(shift.to_vec(), [shift.len()]), &device);
        z = z - s.unsqueeze_dim(0);
    }
    z.into_data().try_into_vec::<f32>().unwrap_or_default()
}

/// `tau * log(n_c / N)` per class: what post-hoc logit adjustment subtracts (Menon et al. 2021).
pub fn log_prior_shift(class_counts: &[usize], tau: f32) -> Vec<f32> {
    let total: usize = class_counts.iter().sum();
    class_counts
        .iter()
        .map(|&n| tau * ((n.max(1) as f64 / total.max(1) as f64).ln() as f32))
        .collect()
}

/// The LT metrics of row-major `logits` `[N, C]` against `labels`.
pub fn score(
    logits: &[f32],
    labels: &[u32],
    train_counts: &[usize],
    thresholds: &MetricsSection,
) -> Result<EvalRecord, metrics::MetricsError> {
    let thr = ShotThresholds {
        many_above: thresholds.many_threshold,
        few_below: thresholds.few_threshold,
    };
    let classes = train_counts.len();
    // O(N + C): no C x C confusion matrix (iNaturalist has 8,142 classes).
    let preds = metrics::argmax(logits, classes)?;
    let (top1, per_class) = metrics::class_accuracy(&preds, labels, classes)?;
    let groups = metrics::group_accuracy_of(&per_class, train_counts, &thr)?;
    let test_top5 = if classes > 5 {
        metrics::top_k_accuracy(logits, labels, classes, 5)?
    } else {
        None
    };
    let calibration = metrics::calibration(logits, labels, classes, metrics::ECE_BINS)?;
    let worst_class = metrics::worst_class(&per_class);
    Ok(EvalRecord {
        test_top1: top1.unwrap_or(0.0) as f32,
        many: groups.many,
        medium: groups.medium,
        few: groups.few,
        per_class: per_class.into_iter().map(|a| a.map(|a| a as f32)).collect(),
        val_top1: None,
        test_top5,
        ece: calibration.as_ref().map(|c| c.ece as f32),
        nll: calibration.as_ref().map(|c| c.nll as f32),
        worst_class: worst_class.map(|w| w as f32),
        reliability: calibration.map(|c| c.bins).unwrap_or_default(),
    })
}

/// The confusion matrix of row-major `logits` `[N, classes]` against `labels` (their arg-max, as
/// [`score`] reads them); `None` above [`MAX_CONFUSION_CLASSES`] classes.
pub fn confusion(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
) -> Result<Option<ConfusionRecord>, metrics::MetricsError> {
    if classes > MAX_CONFUSION_CLASSES {
        return Ok(None);
    }
    let preds = metrics::argmax(logits, classes)?;
    let matrix = metrics::ConfusionMatrix::from_predictions(&preds, labels, classes)?;
    Ok(ConfusionRecord::bounded(&matrix))
}

/// The test confusion matrix of `model` as the run ends: the logits its final evaluation is
/// scored on (post-hoc shift applied; a tau-normalized head is already in `model`). One more
/// pass over the test split; none above [`MAX_CONFUSION_CLASSES`] classes.
pub fn test_confusion(
    ctx: &Context<'_>,
    model: &Classifier,
) -> Result<Option<ConfusionRecord>, TrainError> {
    let data = ctx.data;
    let classes = data.class_counts.len();
    if classes > MAX_CONFUSION_CLASSES {
        return Ok(None);
    }
    let m = model.valid();
    let f = features(&m, &data.test, &data.norm, &ctx.eval_device)?;
    let z = logits(&m.head, f, ctx.posthoc_shift.as_deref());
    Ok(confusion(&z, data.test.labels(), classes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confusion_matrix_counts_each_arg_max_against_its_label() {
        // 3 classes, 5 images: rows are the true class, columns the arg-max.
        let logits = [
            0.9, 0.1, 0.0, // label 0 -> 0
            0.2, 0.7, 0.1, // label 0 -> 1
            0.0, 0.1, 0.8, // label 1 -> 2
            0.1, 0.5, 0.4, // label 1 -> 1
            0.3, 0.3, 0.3, // label 2 -> 0 (ties go to the lowest index)
        ];
        let labels = [0, 0, 1, 1, 2];
        let m = confusion(&logits, &labels, 3).unwrap().unwrap();
        assert_eq!(m.classes, 3);
        #[rustfmt::skip]
        assert_eq!(m.counts, vec![
            1, 1, 0,
            0, 1, 1,
            1, 0, 0,
        ]);
        // It agrees with the score of the same logits: row sums are the test images per
        // class, the trace over N is top-1, the diagonal over the row sum each class's accuracy.
        let rec = score(&logits, &labels, &[10, 5, 1], &MetricsSection::default()).unwrap();
        let row = |j: usize| m.counts[j * 3..(j + 1) * 3].iter().sum::<u64>();
        assert_eq!((row(0), row(1), row(2)), (2, 2, 1));
        let trace: u64 = (0..3).map(|j| m.counts[j * 3 + j]).sum();
        assert_eq!(trace as f32 / 5.0, rec.test_top1);
        for j in 0..3 {
            let acc = m.counts[j * 3 + j] as f32 / row(j) as f32;
            assert_eq!(Some(acc), rec.per_class[j], "class {j}");
        }
    }

    #[test]
    fn no_matrix_is_kept_above_the_bound_and_bad_labels_are_errors() {
        let classes = MAX_CONFUSION_CLASSES + 1;
        let logits = vec![0.0; classes];
        assert_eq!(confusion(&logits, &[0], classes).unwrap(), None);
        let at_bound = confusion(&logits[1..], &[0], MAX_CONFUSION_CLASSES)
            .unwrap()
            .unwrap();
        assert_eq!(
            at_bound.counts.len(),
            MAX_CONFUSION_CLASSES * MAX_CONFUSION_CLASSES
        );
        assert_eq!(at_bound.counts.iter().sum::<u64>(), 1);
        assert!(
            confusion(&[0.0, 1.0], &[2], 2).is_err(),
            "label 2 of 2 classes"
        );
        assert!(
            confusion(&[0.0, 1.0, 2.0], &[0], 2).is_err(),
            "3 logits for 2 classes"
        );
    }
}
