//! The class-sampling probabilities of the Decoupling family (Kang et al., ICLR 2020), kept apart
//! from the drawing so they can be logged, shown and tested against numpy on their own.

/// `p_j = n_j^q / sum_i n_i^q` over the classes with `n_j > 0` (Kang et al. 2020, eq. 1).
///
/// `q = 1` is instance-balanced, `q = 0` class-balanced, `q = 1/2` square-root sampling.
/// A class with no training image gets `p_j = 0` (it cannot be sampled, and `0^0` is not taken to
/// be 1). When no class has an image, every probability is 0.
pub fn power_probabilities(counts: &[usize], q: f64) -> Vec<f64> {
    let weights: Vec<f64> = counts
        .iter()
        .map(|&n| if n == 0 { 0.0 } else { (n as f64).powf(q) })
        .collect();
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return vec![0.0; counts.len()];
    }
    weights.into_iter().map(|w| w / total).collect()
}

/// The progressively-balanced probabilities of Kang et al. 2020, eq. 2:
/// `p_PB(t) = (1 - t/T) p_IB + (t/T) p_CB`, with `t = epoch` and `T = total_epochs`.
///
/// Epoch 0 is instance-balanced and the schedule reaches class-balanced at `t = T`; `t/T` is
/// clamped to `[0, 1]`, and `T = 0` is read as "already balanced" (`t/T = 1`).
pub fn progressive_probabilities(counts: &[usize], epoch: usize, total_epochs: usize) -> Vec<f64> {
    let ratio = if total_epochs == 0 {
        1.0
    } else {
        (epoch as f64 / total_epochs as f64).min(1.0)
    };
    let instance = power_probabilities(counts, 1.0);
    let class = power_probabilities(counts, 0.0);
    instance
        .iter()
        .zip(&class)
        .map(|(ib, cb)| (1.0 - ratio) * ib + ratio * cb)
        .collect()
}
