//! The input pipeline of split-file data sets: each batch's images are read, decoded,
//! transformed (random resized crop, flip, colour jitter; or the evaluation resize and crop) and
//! normalized on a pool of threads as wide as the machine, while the training step consumes the
//! batch before. Memory stays bounded by the batches in flight (the one being built and the
//! queue of ready ones), never the data set. Every image's draws come from its own stream keyed
//! by (epoch seed, position in the epoch), so a batch is the same whichever thread built it and
//! a resumed epoch sees the very batches it would have.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::batches::{Batch, Draw, Normalizer};
use crate::augment::imagenet::{TrainTransform, eval_transform};
use crate::data::{DataError, FileSet};

/// Streams of per-image draws: bits 63 and 62 set, the position in the epoch below. The
/// samplers use streams `0..epochs` and the batch mixers stream `1 << 63`, so none overlap.
const SAMPLE_STREAM: u64 = 3 << 62;

/// Threads that decode images: `CAUDA_LOADER_THREADS` when set (1 ..= 256), else the cores.
pub fn loader_threads() -> usize {
    std::env::var("CAUDA_LOADER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=256).contains(n))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The RNG of the image at `position` in an epoch seeded with `seed`.
pub fn sample_rng(seed: u64, position: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(SAMPLE_STREAM | position as u64);
    rng
}

/// `f(i, slot)` for every `i` of `items`, filling `out` (one `per`-long slot per item, in
/// `items`' order) on [`loader_threads`] threads that take the next slot as they finish one. The
/// first error stops the others at their next item.
pub fn fill_parallel<T: Send>(
    out: &mut [T],
    per: usize,
    items: &[usize],
    f: impl Fn(usize, &mut [T]) -> Result<(), DataError> + Sync,
) -> Result<(), DataError> {
    assert_eq!(out.len(), per * items.len());
    let threads = loader_threads().min(items.len()).max(1);
    let slots = Mutex::new(items.iter().zip(out.chunks_exact_mut(per.max(1))));
    let failed = AtomicBool::new(false);
    let error = Mutex::new(None);
    let work = || {
        while !failed.load(Ordering::Relaxed) {
            let next = slots.lock().ok().and_then(|mut s| s.next());
            let Some((&i, slot)) = next else { break };
            if let Err(e) = f(i, slot) {
                failed.store(true, Ordering::Relaxed);
                if let Ok(mut first) = error.lock() {
                    first.get_or_insert(e);
                }
            }
        }
    };
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }
    match error.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The batch of `order[start..start + len]`, built on the pool (no mixing yet): each image
/// decoded, transformed with its own draws (or the evaluation transform when `transform` is
/// `None`) and normalized straight into its place in the batch.
pub fn train_batch(
    files: &FileSet,
    order: &[usize],
    start: usize,
    seed: u64,
    transform: Option<&TrainTransform>,
    norm: &Normalizer,
) -> Result<Batch, DataError> {
    let per = 3 * files.side * files.side;
    let mut pixels = vec![0f32; order.len() * per];
    let positions: Vec<usize> = (start..start + order.len()).collect();
    fill_parallel(&mut pixels, per, &positions, |p, slot| {
        let img = files.read(order[p - start])?;
        let out = match transform {
            Some(t) => t.apply(&img, &mut sample_rng(seed, p)).0,
            None => eval_transform(&img, files.side),
        };
        norm.write_hwc(&out.pixels, slot);
        Ok(())
    })?;
    Ok(Batch {
        pixels,
        labels: order.iter().map(|&i| files.labels[i]).collect(),
        views: 1,
        mixed: None,
        draws: order
            .iter()
            .map(|&index| Draw { index, crop: None })
            .collect(),
        second: None,
    })
}

/// Normalized images `range` of `files` through the evaluation transform, built on the pool.
pub fn eval_batch(
    files: &FileSet,
    range: std::ops::Range<usize>,
    norm: &Normalizer,
) -> Result<Vec<f32>, DataError> {
    let per = 3 * files.side * files.side;
    let items: Vec<usize> = range.collect();
    let mut pixels = vec![0f32; items.len() * per];
    fill_parallel(&mut pixels, per, &items, |i, slot| {
        norm.write_hwc(&eval_transform(&files.read(i)?, files.side).pixels, slot);
        Ok(())
    })?;
    Ok(pixels)
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
