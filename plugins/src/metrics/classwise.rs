//! Accuracy for large label sets (ImageNet-LT's 1,000 classes, iNaturalist's 8,142) in O(N + C)
//! time and memory: per-class accuracy from correct and support counts instead of a C x C
//! confusion matrix (530 MB for iNaturalist), and top-k accuracy from each row's rank of its
//! label. The same numbers as [`super::Evaluation`] (tested against it).

use super::{MetricsError, Result};

fn check(preds_or_rows: usize, labels: &[u32], num_classes: usize) -> Result<()> {
    if num_classes == 0 {
        return Err(MetricsError::NoClasses);
    }
    if preds_or_rows != labels.len() {
        return Err(MetricsError::Length {
            what: "predictions (one per label)",
            expected: labels.len(),
            got: preds_or_rows,
        });
    }
    if let Some((index, &value)) = labels
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= num_classes)
    {
        return Err(MetricsError::ClassOutOfRange {
            what: "label",
            index,
            value,
            num_classes,
        });
    }
    Ok(())
}

/// (top-1 over all images, each class's accuracy) from predictions; `None` for an empty set
/// and for a class without test images. Accuracies are computed in f64.
pub fn class_accuracy(
    preds: &[u32],
    labels: &[u32],
    num_classes: usize,
) -> Result<(Option<f64>, Vec<Option<f64>>)> {
    check(preds.len(), labels, num_classes)?;
    let mut correct = vec![0u64; num_classes];
    let mut support = vec![0u64; num_classes];
    for (&p, &l) in preds.iter().zip(labels) {
        support[l as usize] += 1;
        correct[l as usize] += u64::from(p == l);
    }
    let total: u64 = support.iter().sum();
    let hits: u64 = correct.iter().sum();
    let top1 = (total > 0).then(|| hits as f64 / total as f64);
    let per_class = correct
        .iter()
        .zip(&support)
        .map(|(&c, &n)| (n > 0).then(|| c as f64 / n as f64))
        .collect();
    Ok((top1, per_class))
}

/// Top-k accuracy of row-major `logits` (`labels.len() x num_classes`): an image counts when
/// fewer than `k` classes score strictly higher than its label (ties count in its favour, where
/// `torch.topk`'s pick among equal values is unspecified). `None` for an empty set.
pub fn top_k_accuracy(
    logits: &[f32],
    labels: &[u32],
    num_classes: usize,
    k: usize,
) -> Result<Option<f32>> {
    check(
        logits.len().checked_div(num_classes).unwrap_or(0),
        labels,
        num_classes,
    )?;
    if logits.len() != labels.len() * num_classes {
        return Err(MetricsError::Length {
            what: "logits (labels x num_classes)",
            expected: labels.len() * num_classes,
            got: logits.len(),
        });
    }
    let hits = logits
        .chunks_exact(num_classes)
        .zip(labels)
        .filter(|(row, l)| {
            let mine = row[**l as usize];
            row.iter().filter(|&&v| v > mine).count() < k
        })
        .count();
    Ok((!labels.is_empty()).then(|| (hits as f64 / labels.len() as f64) as f32))
}

#[cfg(test)]
mod tests {
    use super::super::{Evaluation, ShotThresholds, argmax, group_accuracy_of};
    use super::*;

    #[test]
    fn class_accuracy_equals_the_confusion_matrix_path() {
        let mut state = 3u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            (state >> 33) as u32
        };
        for classes in [1usize, 2, 7, 50] {
            let n = 300;
            let logits: Vec<f32> = (0..n * classes).map(|_| (next() % 1000) as f32).collect();
            // Some classes without test images.
            let labels: Vec<u32> = (0..n)
                .map(|_| next() % classes.div_ceil(2).max(1) as u32 * 2 % classes as u32)
                .collect();
            let counts: Vec<usize> = (0..classes).map(|c| 300 / (c + 1)).collect();
            let thr = ShotThresholds::default();
            let e = Evaluation::from_logits(&logits, &labels, classes, &counts, &thr).unwrap();
            let (top1, per_class) =
                class_accuracy(&argmax(&logits, classes).unwrap(), &labels, classes).unwrap();
            assert_eq!(top1.map(|t| t as f32), e.top1);
            let as_f32: Vec<Option<f32>> = per_class.iter().map(|a| a.map(|a| a as f32)).collect();
            assert_eq!(as_f32, e.per_class);
            assert_eq!(
                group_accuracy_of(&per_class, &counts, &thr).unwrap(),
                e.groups
            );
            // Top-1 by rank is top-1 by argmax when there are no ties.
            let distinct: Vec<f32> = logits
                .iter()
                .enumerate()
                .map(|(i, v)| v + i as f32 * 1e-3)
                .collect();
            let (t1, _) =
                class_accuracy(&argmax(&distinct, classes).unwrap(), &labels, classes).unwrap();
            assert_eq!(
                top_k_accuracy(&distinct, &labels, classes, 1).unwrap(),
                t1.map(|t| t as f32)
            );
        }
    }

    #[test]
    fn top_k_counts_ranks() {
        // Label 2 ranks 3rd in row 0, 1st in row 1; label 0 ranks 4th in row 2.
        let logits = [0.1, 0.9, 0.5, 0.8, 0.0, 0.0, 0.7, 0.1, 0.2, 0.9, 0.8, 0.7];
        let labels = [2, 2, 0];
        assert_eq!(
            top_k_accuracy(&logits, &labels, 4, 1).unwrap(),
            Some(1.0 / 3.0)
        );
        assert_eq!(
            top_k_accuracy(&logits, &labels, 4, 3).unwrap(),
            Some(2.0 / 3.0)
        );
        assert_eq!(top_k_accuracy(&logits, &labels, 4, 4).unwrap(), Some(1.0));
        assert!(top_k_accuracy(&logits, &[5, 0, 0], 4, 1).is_err());
        assert!(top_k_accuracy(&logits[..11], &labels, 4, 1).is_err());
        assert_eq!(top_k_accuracy(&[], &[], 4, 5).unwrap(), None);
    }
}
