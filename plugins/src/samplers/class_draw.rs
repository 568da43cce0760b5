//! The two-stage draw shared by the class-level samplers: a class with given probabilities, then an
//! image of that class uniformly (with replacement across the epoch), from a per-epoch RNG.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The RNG of one epoch: ChaCha8 keyed by `seed`, on stream `epoch`, so epochs are independent
/// streams of one key and the same `(seed, epoch)` always replays the same epoch.
pub fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    rng
}

/// Number of training images per class; labels `>= num_classes` are not counted.
pub fn class_counts(labels: &[u32], num_classes: usize) -> Vec<usize> {
    let mut counts = vec![0usize; num_classes];
    for &l in labels {
        if let Some(c) = counts.get_mut(l as usize) {
            *c += 1;
        }
    }
    counts
}

/// The image indices of each class, in data-set order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassIndex {
    members: Vec<Vec<usize>>,
}

impl ClassIndex {
    /// Groups the indices by label; images with a label `>= num_classes` belong to no class.
    pub fn new(labels: &[u32], num_classes: usize) -> Self {
        let counts = class_counts(labels, num_classes);
        let mut members: Vec<Vec<usize>> = counts.iter().map(|&n| Vec::with_capacity(n)).collect();
        for (i, &l) in labels.iter().enumerate() {
            if let Some(m) = members.get_mut(l as usize) {
                m.push(i);
            }
        }
        Self { members }
    }

    /// The image indices of each class, in data-set order.
    pub fn members(&self) -> &[Vec<usize>] {
        &self.members
    }

    /// Images per class.
    pub fn counts(&self) -> Vec<usize> {
        self.members.iter().map(Vec::len).collect()
    }

    /// `len` draws: a class `j` with probability `probs[j]` (inverse CDF, binary search), then an
    /// image of class `j` uniformly. Classes without images are never drawn whatever their
    /// probability; when no class with an image has a positive probability the epoch is empty.
    pub fn draw(&self, probs: &[f64], len: usize, rng: &mut impl Rng) -> Vec<usize> {
        // Cumulative distribution over drawable classes only (probability 0 for empty ones).
        let mut cdf = Vec::with_capacity(self.members.len());
        let mut acc = 0.0f64;
        let mut last_drawable = None;
        for (j, m) in self.members.iter().enumerate() {
            let p = probs.get(j).copied().unwrap_or(0.0);
            if !m.is_empty() && p > 0.0 && p.is_finite() {
                acc += p;
                last_drawable = Some(j);
            }
            cdf.push(acc);
        }
        let Some(last) = last_drawable else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            let u = rng.random::<f64>() * acc;
            // First class whose cumulative mass exceeds u; rounding can only overshoot the end.
            let j = cdf.partition_point(|&c| c <= u).min(last);
            let m = &self.members[j];
            out.push(m[rng.random_range(0..m.len())]);
        }
        out
    }
}
