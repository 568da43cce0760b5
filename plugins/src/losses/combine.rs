//! The one batch reduction shared by every loss: class weights and mixup targets are applied here,
//! in one place, so a loss only has to give the unweighted per-sample value.

use burn::tensor::{Int, Tensor};

use super::Loss;
use super::draws::StepDraws;
use super::error::{LossError, Result};

/// Soft targets from mixup/cutmix (Zhang et al. ICLR 2018): sample i is `lam_i` of class `labels_a[i]`
/// and `1 - lam_i` of class `labels_b[i]`.
#[derive(Debug, Clone)]
pub struct Mixup {
    /// The second label of each sample, [N].
    pub labels_b: Tensor<1, Int>,
    /// The mixing coefficient of each sample, [N], in [0, 1]; treated as data (no gradient).
    pub lam: Tensor<1>,
}

/// Reduces a batch to the scalar training loss (shape [1]):
///
/// `L = sum_i (lam_i w_{a_i} l(z_i, a_i) + (1 - lam_i) w_{b_i} l(z_i, b_i))
///      / sum_i (lam_i w_{a_i} + (1 - lam_i) w_{b_i})`
///
/// with `l` = [`Loss::per_sample`] and `w` = [`Loss::class_weights`]`(epoch)` (all 1 when None).
///
/// - Hard labels: pass `mix = None` (lam_i = 1). The b term is then not computed at all (one forward of
///   the per-sample loss instead of two) and `L = sum_i w_{a_i} l_i / sum_i w_{a_i}`, exactly PyTorch's
///   `F.cross_entropy(z, a, weight=w, reduction='mean')`; without weights it is the plain mean.
/// - Mixup: with one `lam` for the whole batch and no class weights the denominator is N and
///   `L = lam L(a) + (1 - lam) L(b)`, the usual mixup criterion. With class weights it is the weighted
///   mean over the 2N (sample, label) pairs, each weighted by its share times its class weight.
///
/// The weights are constants: gradients flow only through the logits.
///
/// Errors if the label/lam lengths differ from the batch size or if the loss' class count or weight
/// vector length differs from the number of logit columns.
///
/// A loss that draws noise is evaluated with the default draws (key 0); the training loop
/// calls [`combine_drawn`] with its step's.
pub fn combine(
    loss: &dyn Loss,
    logits: Tensor<2>,
    labels_a: Tensor<1, Int>,
    mix: Option<Mixup>,
    epoch: usize,
) -> Result<Tensor<1>> {
    combine_drawn(loss, logits, labels_a, mix, epoch, StepDraws::default())
}

/// [`combine`] with the step's draws: each per-sample evaluation is
/// [`Loss::per_sample_drawn`]`(.., draws, term)`, term 0 for the labels `a`, 1 for `b` (a
/// stochastic loss draws each term's noise afresh, as its reference calls it once per label).
pub fn combine_drawn(
    loss: &dyn Loss,
    logits: Tensor<2>,
    labels_a: Tensor<1, Int>,
    mix: Option<Mixup>,
    epoch: usize,
    draws: StepDraws,
) -> Result<Tensor<1>> {
    let [n, c] = logits.dims();
    check_batch("labels_a", n, labels_a.dims()[0])?;
    if let Some(m) = &mix {
        check_batch("labels_b", n, m.labels_b.dims()[0])?;
        check_batch("lam", n, m.lam.dims()[0])?;
    }
    if let Some(k) = loss.num_classes().filter(|&k| k != c) {
        return Err(LossError::ClassMismatch {
            what: "the loss' class counts",
            expected: c,
            got: k,
        });
    }
    let device = logits.device();
    let weights = match loss.class_weights(epoch) {
        Some(w) if w.len() != c => {
            return Err(LossError::ClassMismatch {
                what: "class weights",
                expected: c,
                got: w.len(),
            });
        }
        Some(w) => Some(Tensor::<1>::from_floats(w.as_slice(), &device)),
        None => None,
    };

    let l_a = loss.per_sample_drawn(logits.clone(), labels_a.clone(), draws, 0);
    let Some(Mixup { labels_b, lam }) = mix else {
        return Ok(match weights {
            None => l_a.mean(),
            Some(w) => {
                let w_a = w.select(0, labels_a);
                (w_a.clone() * l_a).sum() / w_a.sum()
            }
        });
    };

    let l_b = loss.per_sample_drawn(logits, labels_b.clone(), draws, 1);
    let lam = lam.detach();
    let one_minus = lam.clone().neg().add_scalar(1.0);
    let (s_a, s_b) = match weights {
        None => (lam, one_minus),
        Some(w) => (
            lam * w.clone().select(0, labels_a),
            one_minus * w.select(0, labels_b),
        ),
    };
    let den = (s_a.clone() + s_b.clone()).sum();
    Ok((s_a * l_a + s_b * l_b).sum() / den)
}

fn check_batch(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(LossError::BatchMismatch {
            what,
            expected,
            got,
        })
    }
}
