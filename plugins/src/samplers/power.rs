//! The four samplers of the Decoupling study (Kang et al., ICLR 2020): instance-balanced,
//! class-balanced, square-root and progressively-balanced.

use rand::seq::SliceRandom;

use super::Sampler;
use super::class_draw::epoch_rng;
use super::probabilities::{power_probabilities, progressive_probabilities};

/// Instance-balanced sampling (`q = 1`, every image equally likely): the epoch is a seeded
/// permutation of all indices, i.e. each image exactly once, as a plain shuffled data loader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceBalanced;

impl Sampler for InstanceBalanced {
    fn epoch_indices(
        &self,
        labels: &[u32],
        _: usize,
        epoch: usize,
        _: usize,
        seed: u64,
    ) -> Vec<usize> {
        let mut indices: Vec<usize> = (0..labels.len()).collect();
        indices.shuffle(&mut epoch_rng(seed, epoch));
        indices
    }

    fn class_probabilities(&self, counts: &[usize], _: usize, _: usize) -> Vec<f64> {
        power_probabilities(counts, 1.0)
    }
}

/// Class-balanced sampling (`q = 0`, Kang et al. 2020): each of the `N` draws of an epoch picks a
/// class uniformly among the classes that have images, then one of its images uniformly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassBalanced;

impl Sampler for ClassBalanced {
    fn class_probabilities(&self, counts: &[usize], _: usize, _: usize) -> Vec<f64> {
        power_probabilities(counts, 0.0)
    }
}

/// Square-root sampling (`q = 1/2`, Mahajan et al. ECCV 2018, as evaluated by Kang et al. 2020):
/// `p_j = sqrt(n_j) / sum_i sqrt(n_i)`, then an image of class `j` uniformly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SquareRoot;

impl Sampler for SquareRoot {
    fn class_probabilities(&self, counts: &[usize], _: usize, _: usize) -> Vec<f64> {
        power_probabilities(counts, 0.5)
    }
}

/// Progressively-balanced sampling (Kang et al. 2020, eq. 2):
/// `p_PB(t) = (1 - t/T) p_IB + (t/T) p_CB` with `t` the epoch and `T` the number of epochs, so
/// training moves from instance-balanced (epoch 0) towards class-balanced. Every epoch, including
/// epoch 0, is drawn class-then-image with replacement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressivelyBalanced;

impl Sampler for ProgressivelyBalanced {
    fn class_probabilities(&self, counts: &[usize], epoch: usize, total: usize) -> Vec<f64> {
        progressive_probabilities(counts, epoch, total)
    }
}
