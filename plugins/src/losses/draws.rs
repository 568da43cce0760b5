//! Random numbers a loss draws (GCL's Gaussian clouds), from a key the training loop derives
//! from the run's seed, the stage and the optimizer step, so a run draws the same noise every
//! time it trains, a resumed run continues with the same draws, and the lockstep replay
//! (`bench/reference.py`, `gcl_noise`) regenerates them bit for bit instead of reading them.
//!
//! The generator is counter based: each number is a pure function of (key, term, row, class),
//! so a data-parallel shard draws exactly the rows it holds (`first_row`), and no generator state
//! is shared between threads. `mix` is the output function of splitmix64 (Steele, Lea and Flood,
//! "Fast splittable pseudorandom number generators", OOPSLA 2014), a bijection of `u64`; a
//! standard normal comes from Box-Muller on the two 32-bit halves of one mixed counter.

/// Where in a run one evaluation of a loss happens: the step's key and the batch's first row.
/// `Default` (key 0, row 0) is what a loss gets outside the training loop (a fixture, a call of
/// [`super::Loss::per_sample`] alone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepDraws {
    /// The batch's key ([`step_key`]).
    pub key: u64,
    /// The index in the whole batch of this tensor's row 0 (a data-parallel shard's offset).
    pub first_row: usize,
}

/// The golden-ratio increment of splitmix64.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64's output function: a bijection of `u64` with good avalanche.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of batch `batch` (0-based within the epoch) of epoch `epoch` of stage `stage` of a
/// run seeded with `seed`: `mix(seed ^ (stage << 56) ^ mix((epoch << 32 | batch) + 1))`. It
/// names the batch by its epoch, not by a step counter, so a run resumed at an epoch draws what
/// the uninterrupted run drew.
pub fn step_key(seed: u64, stage: usize, epoch: usize, batch: usize) -> u64 {
    let at = ((epoch as u64) << 32) | batch as u64;
    mix(seed ^ ((stage as u64) << 56) ^ mix(at.wrapping_add(1)))
}

/// A standard normal number for (`key`, `term`, `row`, `class`): `term` tells apart the draws of
/// one step's separate evaluations (a mixed batch's two labels); rows below 2^38 and classes
/// below 2^24 give distinct counters.
pub fn standard_normal(key: u64, term: usize, row: usize, class: usize) -> f64 {
    let counter = ((term as u64) << 62) | ((row as u64) << 24) | class as u64;
    let x = mix(key ^ counter.wrapping_mul(GOLDEN));
    let scale = 1.0 / 4_294_967_296.0;
    let u1 = ((x >> 32) as f64 + 0.5) * scale;
    let u2 = ((x & 0xFFFF_FFFF) as f64 + 0.5) * scale;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `rows x classes` standard normals, row major, of rows `at.first_row ..` of `term`.
pub fn normal_block(at: StepDraws, term: usize, rows: usize, classes: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * classes);
    for r in 0..rows {
        for c in 0..classes {
            out.push(standard_normal(at.key, term, at.first_row + r, c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_standard_normal_and_depend_on_every_coordinate() {
        let at = StepDraws {
            key: step_key(7, 1, 0, 3),
            first_row: 0,
        };
        let v = normal_block(at, 0, 200, 50);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
        let one = standard_normal(at.key, 0, 5, 7);
        assert_ne!(one, standard_normal(at.key, 1, 5, 7));
        assert_ne!(one, standard_normal(at.key, 0, 6, 7));
        assert_ne!(one, standard_normal(at.key, 0, 5, 8));
        assert_ne!(one, standard_normal(step_key(7, 1, 0, 4), 0, 5, 7));
        assert_ne!(step_key(7, 1, 0, 3), step_key(7, 1, 1, 3));
        assert_ne!(step_key(7, 1, 0, 3), step_key(7, 2, 0, 3));
        assert_ne!(step_key(7, 1, 0, 3), step_key(8, 1, 0, 3));
        // A shard starting at row 120 draws what the whole batch drew for those rows.
        let shard = normal_block(
            StepDraws {
                first_row: 120,
                ..at
            },
            0,
            80,
            50,
        );
        assert_eq!(shard[..], v[120 * 50..]);
    }
}
