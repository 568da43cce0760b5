//! Re-sampling of the training set, one epoch of indices at a time: the survey's class-level
//! re-sampling family in the "Decoupling" formulation (Kang et al., ICLR 2020), where class `j`
//! is drawn with probability `p_j = n_j^q / sum_i n_i^q` and then an image of that class uniformly.
//!
//! | sampler | `q` | paper |
//! |---|---|---|
//! | [`InstanceBalanced`] | 1 | plain epoch (a seeded permutation) |
//! | [`ClassBalanced`] | 0 | Kang et al. 2020, "class-balanced sampling" |
//! | [`SquareRoot`] | 1/2 | Mahajan et al. 2018, via Kang et al. 2020 |
//! | [`ProgressivelyBalanced`] | `(1 - t/T) p_IB + (t/T) p_CB` | Kang et al. 2020 |
//! | [`ClassAware`] | 0, in class cycles of `max n_c x C` draws | Kang et al. 2020's code (cRT, LWS) |
//! | [`Reversed`] | -1 (`p_c ~ n_max / n_c`) | Zhou et al. 2020 (BBN's re-balancing branch) |

mod class_aware;
mod class_draw;
mod power;
mod probabilities;
mod reversed;

pub use class_aware::ClassAware;
pub use class_draw::{ClassIndex, class_counts, epoch_rng};
pub use power::{ClassBalanced, InstanceBalanced, ProgressivelyBalanced, SquareRoot};
pub use probabilities::{power_probabilities, progressive_probabilities};
pub use reversed::{Reversed, reversed_probabilities};

/// Errors a caller can get when it validates its labels before sampling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamplerError {
    #[error("label {label} of image {index} is not below num_classes = {num_classes}")]
    LabelOutOfRange {
        index: usize,
        label: u32,
        num_classes: usize,
    },
}

pub type Result<T> = std::result::Result<T, SamplerError>;

/// Checks that every label is `< num_classes`. Samplers never panic on bad labels (images whose
/// label is out of range are simply never drawn by the class-level samplers), so a caller that
/// wants an error instead calls this once when the data set is loaded.
pub fn check_labels(labels: &[u32], num_classes: usize) -> Result<()> {
    match labels
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= num_classes)
    {
        Some((index, &label)) => Err(SamplerError::LabelOutOfRange {
            index,
            label,
            num_classes,
        }),
        None => Ok(()),
    }
}

/// A re-sampling strategy: which training images one epoch visits, in which order.
pub trait Sampler: Send + Sync + std::fmt::Debug {
    /// The training-set indices of one epoch, in order, given per-image labels; seeded per
    /// `(seed, epoch)` (see [`epoch_rng`]), so the same arguments give the same epoch. The epoch
    /// has `labels.len()` indices. By default: `labels.len()` class-then-image draws with
    /// [`class_probabilities`](Sampler::class_probabilities), an image uniformly within its class.
    fn epoch_indices(
        &self,
        labels: &[u32],
        num_classes: usize,
        epoch: usize,
        total_epochs: usize,
        seed: u64,
    ) -> Vec<usize> {
        let index = ClassIndex::new(labels, num_classes);
        let probs = self.class_probabilities(&index.counts(), epoch, total_epochs);
        let out = index.draw(&probs, labels.len(), &mut epoch_rng(seed, epoch));
        tracing::debug!(sampler = ?self, epoch, draws = out.len(), "sampled epoch");
        out
    }

    /// The probability of drawing each class at `epoch` of `total_epochs`, given the per-class
    /// training counts `counts` (classes with no image get probability 0).
    fn class_probabilities(&self, counts: &[usize], epoch: usize, total_epochs: usize) -> Vec<f64>;
}

#[cfg(test)]
mod tests;
