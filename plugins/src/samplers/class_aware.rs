//! Class-aware sampling as the Decoupling paper's code defines one epoch of classifier
//! re-training (Kang et al., ICLR 2020, `data/ClassAwareSampler.py`, after Shen et al. 2016):
//! an epoch has `max_c n_c x C` draws; classes are visited in random cycles (every class once
//! per cycle, the order reshuffled each cycle), and each visit takes the next `per_visit`
//! images of that class from its own random cycle (every image of the class once per cycle,
//! reshuffled when exhausted). The released cRT/LWS configs use `num_samples_cls: 4`.
//!
//! Unlike the reference, whose cycle iterators live across epochs, every epoch here starts fresh
//! cycles from its `(seed, epoch)` RNG so that a resumed run replays the same epoch; the
//! per-epoch class and image frequencies are the same.

use rand::Rng;
use rand::seq::SliceRandom;

use super::Sampler;
use super::class_draw::{ClassIndex, epoch_rng};
use super::probabilities::power_probabilities;

/// Class-aware sampling with `per_visit` images per class visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassAware {
    pub per_visit: usize,
}

impl Default for ClassAware {
    fn default() -> Self {
        Self { per_visit: 4 }
    }
}

/// A list visited in random cycles: every element once per cycle, reshuffled each cycle.
struct Cycle {
    items: Vec<usize>,
    next: usize,
}

impl Cycle {
    fn new(items: Vec<usize>) -> Self {
        let next = items.len();
        Self { items, next }
    }

    fn take(&mut self, rng: &mut impl Rng) -> Option<usize> {
        if self.items.is_empty() {
            return None;
        }
        if self.next == self.items.len() {
            self.items.shuffle(rng);
            self.next = 0;
        }
        self.next += 1;
        Some(self.items[self.next - 1])
    }
}

impl ClassAware {
    /// The epoch's draws: `max_c n_c x C'` indices, `C'` the classes that have images.
    pub fn draws(&self, index: &ClassIndex, rng: &mut impl Rng) -> Vec<usize> {
        let members = index.members();
        let nonempty: Vec<usize> = (0..members.len())
            .filter(|&c| !members[c].is_empty())
            .collect();
        let n_max = members.iter().map(Vec::len).max().unwrap_or(0);
        let len = n_max * nonempty.len();
        let mut classes = Cycle::new(nonempty);
        let mut images: Vec<Cycle> = members.iter().map(|m| Cycle::new(m.clone())).collect();
        let per_visit = self.per_visit.max(1);
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let Some(c) = classes.take(rng) else {
                break;
            };
            for _ in 0..per_visit.min(len - out.len()) {
                if let Some(i) = images[c].take(rng) {
                    out.push(i);
                }
            }
        }
        out
    }
}

impl Sampler for ClassAware {
    fn epoch_indices(
        &self,
        labels: &[u32],
        num_classes: usize,
        epoch: usize,
        _: usize,
        seed: u64,
    ) -> Vec<usize> {
        let index = ClassIndex::new(labels, num_classes);
        self.draws(&index, &mut epoch_rng(seed, epoch))
    }

    fn class_probabilities(&self, counts: &[usize], _: usize, _: usize) -> Vec<f64> {
        power_probabilities(counts, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(counts: &[usize]) -> Vec<u32> {
        counts
            .iter()
            .enumerate()
            .flat_map(|(c, &n)| std::iter::repeat_n(c as u32, n))
            .collect()
    }

    #[test]
    fn an_epoch_is_max_class_size_times_classes_and_balanced() {
        let l = labels(&[100, 30, 7, 0, 2]);
        let s = ClassAware::default();
        let order = s.epoch_indices(&l, 5, 0, 10, 3);
        assert_eq!(order.len(), 100 * 4, "max n_c x non-empty classes");
        let mut per_class = [0usize; 5];
        for &i in &order {
            per_class[l[i] as usize] += 1;
        }
        // 400 draws in visits of 4 over cycles of 4 classes: exactly 100 per class.
        assert_eq!(per_class, [100, 100, 100, 0, 100]);
    }

    #[test]
    fn visits_take_runs_of_one_class_and_cycle_through_its_images() {
        let l = labels(&[12, 12, 12]);
        let order = ClassAware { per_visit: 4 }.epoch_indices(&l, 3, 0, 1, 9);
        assert_eq!(order.len(), 36);
        for visit in order.chunks(4) {
            let c = l[visit[0]];
            assert!(visit.iter().all(|&i| l[i] == c), "{visit:?}");
        }
        // Every cycle of 3 visits covers the 3 classes.
        for cycle in order.chunks(12) {
            let mut cs: Vec<u32> = cycle.chunks(4).map(|v| l[v[0]]).collect();
            cs.sort_unstable();
            assert_eq!(cs, vec![0, 1, 2]);
        }
        // Each class' 12 images appear once each (one cycle of its images).
        let mut seen = order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..36).collect::<Vec<_>>());
    }

    #[test]
    fn same_seed_and_epoch_replays_the_epoch() {
        let l = labels(&[20, 5, 3]);
        let s = ClassAware::default();
        assert_eq!(
            s.epoch_indices(&l, 3, 2, 5, 1),
            s.epoch_indices(&l, 3, 2, 5, 1)
        );
        assert_ne!(
            s.epoch_indices(&l, 3, 2, 5, 1),
            s.epoch_indices(&l, 3, 3, 5, 1)
        );
    }
}
