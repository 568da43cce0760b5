//! BBN's reversed sampler (Zhou et al., "BBN: Bilateral-Branch Network with Cumulative
//! Learning for Long-Tailed Visual Recognition", CVPR 2020, Sec. 3.2): the re-balancing branch's
//! data, where a class is drawn with probability `p_c = w_c / sum_j w_j`, `w_c = n_max / n_c`
//! (so the rarer the class the likelier), then one of its images uniformly with replacement, as
//! the reference code's `get_weight` and `sample_class_index_by_weight` do
//! (Megvii-Nanjing/BBN, `lib/dataset/imbalance_cifar.py`: `class_weight = [max_num / i for i in num_list]`).

use super::Sampler;

/// Reversed sampling: `p_c ~ n_max / n_c` (0 for a class without images).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reversed;

/// BBN's class weights normalized: `w_c = n_max / n_c`, `p_c = w_c / sum_j w_j`; a class with no
/// image gets 0 (BBN's code would divide by zero), and no image at all gives all zeros.
pub fn reversed_probabilities(counts: &[usize]) -> Vec<f64> {
    let max = counts.iter().copied().max().unwrap_or(0) as f64;
    let weights: Vec<f64> = counts
        .iter()
        .map(|&n| if n == 0 { 0.0 } else { max / n as f64 })
        .collect();
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return vec![0.0; counts.len()];
    }
    weights.into_iter().map(|w| w / total).collect()
}

impl Sampler for Reversed {
    fn class_probabilities(&self, counts: &[usize], _: usize, _: usize) -> Vec<f64> {
        reversed_probabilities(counts)
    }
}
