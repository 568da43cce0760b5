//! The one seeded shuffle every split uses, written out (ChaCha8 + Fisher-Yates + Lemire's
//! unbiased bounded integers) so split hashes do not change when `rand`'s own algorithms do.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A ChaCha8 generator keyed by `seed` (via `seed_from_u64`) on stream `stream`: one independent
/// stream per class, so adding or removing a class does not reshuffle the others.
pub(crate) fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Uniform integer in `0..n` (`n > 0`) by Lemire's multiply-and-reject method.
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// In-place Fisher-Yates shuffle: for `i` from `len-1` down to 1, swap `i` with `below(i+1)`.
pub(crate) fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<usize> = (0..100).collect();
        shuffle(&mut a, &mut stream_rng(7, 3));
        let mut b: Vec<usize> = (0..100).collect();
        shuffle(&mut b, &mut stream_rng(7, 3));
        let mut c: Vec<usize> = (0..100).collect();
        shuffle(&mut c, &mut stream_rng(7, 4));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut rng = stream_rng(1, 0);
        let mut hist = [0usize; 3];
        for _ in 0..30_000 {
            hist[below(&mut rng, 3) as usize] += 1;
        }
        assert!(
            hist.iter().all(|&h| (9_500..10_500).contains(&h)),
            "{hist:?}"
        );
    }
}
