//! The input pipeline of one epoch: gather the sampler's indices into batches, apply crop+flip
//! on u8 pixels (in-memory sets) or decode and transform files on a thread pool
//! ([`super::stream`]), normalize to f32, apply batch mixing, all on a producer thread that runs
//! one or two batches ahead of the training step, so data preparation overlaps compute. A stage
//! with a second sampler stream (BBN's re-balancing branch) gets, with each batch, a batch of the
//! same size drawn by that sampler ([`Batch::second`]).

use std::sync::Arc;
use std::sync::mpsc::sync_channel;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::augment::imagenet::TrainTransform;
use crate::augment::{AugmentError, BatchMixer, crop_flip_one};
use crate::data::{DataError, FileSet, ImageSet, Images};

/// Per-channel normalization `(x / 255 - mean_c) / std_c`, with statistics of the training set.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalizer {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalizer {
    /// Mean and (population) standard deviation per channel of `set`'s pixels scaled to [0, 1].
    pub fn fit(set: &ImageSet) -> Self {
        let c = set.channels;
        let hw = set.height * set.width;
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for img in set.pixels.chunks_exact(c * hw) {
            for ch in 0..c {
                for &p in &img[ch * hw..(ch + 1) * hw] {
                    let v = p as f64 / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
        }
        let n = (set.labels.len() * hw).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n - m * m).max(0.0).sqrt()).max(1e-6) as f32)
            .collect();
        Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// Appends the normalized pixels of one CHW u8 image to `out`.
    pub fn push(&self, img: &[u8], hw: usize, out: &mut Vec<f32>) {
        for (ch, plane) in img.chunks_exact(hw).enumerate() {
            let (m, s) = (self.mean[ch], 1.0 / self.std[ch]);
            out.extend(plane.iter().map(|&p| (p as f32 / 255.0 - m) * s));
        }
    }

    /// Writes an interleaved RGB (HWC) image normalized into `out` as CHW: the values
    /// [`Normalizer::push`] gives for the same image in CHW, without the intermediate copy.
    ///
    /// # Panics
    /// When `out` is not `3 * pixels` long or the normalizer is not for 3 channels.
    pub fn write_hwc(&self, hwc: &[u8], out: &mut [f32]) {
        let hw = hwc.len() / 3;
        assert_eq!(out.len(), 3 * hw);
        let (r, rest) = out.split_at_mut(hw);
        let (g, b) = rest.split_at_mut(hw);
        let k: [(f32, f32); 3] = std::array::from_fn(|c| (self.mean[c], 1.0 / self.std[c]));
        for (i, px) in hwc.chunks_exact(3).enumerate() {
            r[i] = (px[0] as f32 / 255.0 - k[0].0) * k[0].1;
            g[i] = (px[1] as f32 / 255.0 - k[1].0) * k[1].1;
            b[i] = (px[2] as f32 / 255.0 - k[2].0) * k[2].1;
        }
    }
}

/// One training batch, ready to become tensors.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `views * len * C * H * W` normalized pixels: every image of the classification view,
    /// then, for a contrastive model, every image of each further augmented view.
    pub pixels: Vec<f32>,
    pub labels: Vec<u32>,
    /// Views per image (1: the classification view alone).
    pub views: usize,
    /// Partner labels and per-sample weights of `labels` when the batch was mixed.
    pub mixed: Option<(Vec<u32>, Vec<f32>)>,
    /// Where each image came from: its training-set index and, with crop+flip, the crop it got
    /// (the lockstep record keeps these, so a replay can redraw one factor and keep the others),
    /// in the order of `pixels` (view by view).
    pub draws: Vec<Draw>,
    /// The second sampler stream's batch of the same size, when the stage has one
    /// ([`EpochPlan::second`]): one view, not mixed.
    pub second: Option<Stream>,
}

/// A batch of the stage's second sampler stream: its images' normalized pixels `len x C x H x
/// W`, labels and draws, cropped and flipped (when on) with draws of their own.
#[derive(Debug, Clone)]
pub struct Stream {
    pub pixels: Vec<f32>,
    pub labels: Vec<u32>,
    pub draws: Vec<Draw>,
}

/// One image's draws: its index in the training set, and its crop offsets `(dx, dy)` in the
/// padded image and horizontal flip when crop+flip is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draw {
    pub index: usize,
    pub crop: Option<(usize, usize, bool)>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// What one epoch's pipeline needs.
pub struct EpochPlan<'a> {
    pub set: &'a Images,
    pub order: Vec<usize>,
    pub batch_size: usize,
    /// Crop padding when crop+flip is on (in-memory sets).
    pub crop_pad: Option<usize>,
    /// The training transform of files (random resized crop, flip, jitter); `None` gives them
    /// the evaluation transform.
    pub transform: Option<TrainTransform>,
    pub norm: &'a Normalizer,
    pub mixer: Option<Arc<dyn BatchMixer>>,
    pub class_counts: &'a [usize],
    /// Seeds this epoch's augmentation RNG, so a resumed epoch sees the same batches.
    pub seed: u64,
    /// Views of each image (1: the classification view alone; a contrastive model's
    /// [`crate::models::Classifier::batch_views`]). Each further view is drawn independently
    /// after the first view's draws, so the classification view is what it would be alone;
    /// batch mixing mixes the classification view.
    pub views: usize,
    /// The epoch's order of a second sampler stream (as long as `order`), whose batch `b` is
    /// `second[b x batch_size ..]` beside the main batch `b`. Its crops and flips come from an
    /// augmentation RNG of its own (in-memory sets: [`augment_rng`] of the seed XOR
    /// [`SECOND_STREAM_AUGMENT`]; files: per-image draws of their own seed), so the main batches
    /// are what they would be without it.
    pub second: Option<Vec<usize>>,
    /// The 0-based epoch and the stage's epochs, for a mixer that depends on them (CMO's
    /// window of epochs).
    pub at: (usize, usize),
}

/// The per-image seed index of the second stream's file draws ([`view_seed`]): past any view.
const SECOND_STREAM_VIEW: usize = 1 << 20;

/// XORed into the epoch's seed for the second stream's crop and flip RNG (in-memory sets).
pub const SECOND_STREAM_AUGMENT: u64 = 0x2B0D_5EC0_4D00_0001;

/// Why a batch could not be made.
#[derive(Debug)]
enum BatchError {
    Augment(AugmentError),
    Data(DataError),
}

/// Runs `step` on every batch of the epoch while the next batches are prepared on another thread
/// (two ready batches at most wait in the queue).
pub fn for_each_batch<E: Send + From<AugmentError> + From<DataError>>(
    plan: EpochPlan<'_>,
    mut step: impl FnMut(Batch) -> Result<(), E>,
) -> Result<(), E> {
    let (tx, rx) = sync_channel::<Result<Batch, BatchError>>(2);
    std::thread::scope(|scope| {
        let producer = std::thread::Builder::new()
            .name("cauda-batches".into())
            .spawn_scoped(scope, move || produce(plan, |b| tx.send(b).is_ok()));
        let mut result = Ok(());
        for batch in rx.iter() {
            let batch = batch.map_err(|e| match e {
                BatchError::Augment(e) => E::from(e),
                BatchError::Data(e) => E::from(e),
            });
            if let Err(e) = batch.and_then(&mut step) {
                result = Err(e);
                break;
            }
        }
        // Dropping the receiver stops the producer at its next send.
        drop(rx);
        if let Ok(handle) = producer {
            let _ = handle.join();
        }
        result
    })
}

/// The ChaCha8 stream of the epoch's augmentation draws (crop offsets, flips, mixing).
///
/// The samplers draw the epoch's order from the same key on stream `epoch`
/// ([`crate::samplers::epoch_rng`]), so the augmentation must use a stream no epoch number
/// reaches: on stream 0 (as it once did) epoch 0's crops and flips were the very numbers that
/// had shuffled the images, a coupling between which image comes and how it is cropped.
pub const AUGMENT_STREAM: u64 = 1 << 63;

/// The seed of view `v`'s per-image draws of a file set (view 0: the epoch's own seed).
fn view_seed(seed: u64, v: usize) -> u64 {
    seed ^ (v as u64).wrapping_mul(0xA24B_AED4_963E_E407)
}

/// The augmentation RNG of an epoch seeded with `seed`.
pub fn augment_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(AUGMENT_STREAM);
    rng
}

fn produce(plan: EpochPlan<'_>, send: impl FnMut(Result<Batch, BatchError>) -> bool) {
    match plan.set {
        Images::Memory(set) => produce_memory(set, &plan, send),
        Images::Files(files) => produce_files(files, &plan, send),
    }
}

/// Batches of files: each built on the decoding pool, then mixed on this thread.
fn produce_files(
    files: &FileSet,
    plan: &EpochPlan<'_>,
    mut send: impl FnMut(Result<Batch, BatchError>) -> bool,
) {
    let mut rng = augment_rng(plan.seed);
    let bs = plan.batch_size.max(1);
    for (b, chunk) in plan.order.chunks(bs).enumerate() {
        let view = |v: usize| {
            super::stream::train_batch(
                files,
                chunk,
                b * bs,
                view_seed(plan.seed, v),
                plan.transform.as_ref(),
                plan.norm,
            )
            .map_err(BatchError::Data)
        };
        let second = |order: &Vec<usize>| {
            let at = (b * bs).min(order.len());
            let chunk2 = &order[at..(at + chunk.len()).min(order.len())];
            super::stream::train_batch(
                files,
                chunk2,
                at,
                view_seed(plan.seed, SECOND_STREAM_VIEW),
                plan.transform.as_ref(),
                plan.norm,
            )
            .map(|s| Stream {
                pixels: s.pixels,
                labels: s.labels,
                draws: s.draws,
            })
            .map_err(BatchError::Data)
        };
        let built = view(0).and_then(|mut batch| {
            batch.second = plan.second.as_ref().map(second).transpose()?;
            if let Some(m) = &plan.mixer {
                let chw = [3, files.side, files.side];
                batch.mixed = mix(m.as_ref(), plan, &mut batch, chw, &mut rng)?;
            }
            for v in 1..plan.views.max(1) {
                let other = view(v)?;
                batch.pixels.extend(other.pixels);
                batch.draws.extend(other.draws);
                batch.views += 1;
            }
            Ok(batch)
        });
        let failed = built.is_err();
        if !send(built) || failed {
            return;
        }
    }
}

/// A mixed batch's partner labels and per-sample weights ([`Batch::mixed`]).
type Mixed = (Vec<u32>, Vec<f32>);

/// Mixes the classification view of `batch` (its first `len x C x H x W` pixels) with the plan's
/// mixer; a mixer that takes the second stream (CMO) gets it and consumes it.
fn mix(
    mixer: &dyn BatchMixer,
    plan: &EpochPlan<'_>,
    batch: &mut Batch,
    chw: [usize; 3],
    rng: &mut ChaCha8Rng,
) -> Result<Option<Mixed>, BatchError> {
    let mixed = match (&batch.second, mixer.takes_second_stream()) {
        (Some(s), true) => mixer.mix_with_second(
            &mut batch.pixels,
            chw,
            &batch.labels,
            (&s.pixels, &s.labels),
            plan.class_counts,
            plan.at,
            rng,
        ),
        _ => mixer
            .mix(
                &mut batch.pixels,
                chw,
                &batch.labels,
                plan.class_counts,
                rng,
            )
            .map(Some),
    }
    .map_err(BatchError::Augment)?;
    if mixer.takes_second_stream() {
        batch.second = None;
    }
    Ok(mixed)
}

fn produce_memory(
    set: &ImageSet,
    plan: &EpochPlan<'_>,
    mut send: impl FnMut(Result<Batch, BatchError>) -> bool,
) {
    let (c, h, w) = (set.channels, set.height, set.width);
    let chw = c * h * w;
    let views = plan.views.max(1);
    let mut rng = augment_rng(plan.seed);
    let mut rng2 = augment_rng(plan.seed ^ SECOND_STREAM_AUGMENT);
    let bs = plan.batch_size.max(1);
    for (b, chunk) in plan.order.chunks(bs).enumerate() {
        // The second stream's images, cropped with draws of their own.
        let second = match &plan.second {
            None => None,
            Some(order) => {
                let at = (b * bs).min(order.len());
                let chunk2 = &order[at..(at + chunk.len()).min(order.len())];
                let mut px = Vec::with_capacity(chunk2.len() * chw);
                let mut dr = Vec::with_capacity(chunk2.len());
                if let Err(e) = push_view(set, chunk2, plan, &mut rng2, &mut px, &mut dr) {
                    send(Err(BatchError::Augment(e)));
                    return;
                }
                Some(Stream {
                    pixels: px,
                    labels: chunk2.iter().map(|&i| set.labels[i]).collect(),
                    draws: dr,
                })
            }
        };
        let mut batch = Batch {
            pixels: Vec::with_capacity(views * chunk.len() * chw),
            labels: chunk.iter().map(|&i| set.labels[i]).collect(),
            views,
            mixed: None,
            draws: Vec::with_capacity(views * chunk.len()),
            second,
        };
        for v in 0..views {
            if let Err(e) = push_view(
                set,
                chunk,
                plan,
                &mut rng,
                &mut batch.pixels,
                &mut batch.draws,
            ) {
                send(Err(BatchError::Augment(e)));
                return;
            }
            if v > 0 {
                continue;
            }
            // Mixing draws right after the classification view's crops, as without views.
            if let Some(m) = &plan.mixer {
                match mix(m.as_ref(), plan, &mut batch, [c, h, w], &mut rng) {
                    Ok(mixed) => batch.mixed = mixed,
                    Err(e) => {
                        send(Err(e));
                        return;
                    }
                }
            }
        }
        if !send(Ok(batch)) {
            return;
        }
    }
}

/// One view of the images `chunk` of `set`: each cropped and flipped with fresh draws when
/// crop+flip is on, normalized onto `pixels`.
fn push_view(
    set: &ImageSet,
    chunk: &[usize],
    plan: &EpochPlan<'_>,
    rng: &mut ChaCha8Rng,
    pixels: &mut Vec<f32>,
    draws: &mut Vec<Draw>,
) -> Result<(), AugmentError> {
    let (c, h, w) = (set.channels, set.height, set.width);
    let chw = c * h * w;
    for &i in chunk {
        let img = &set.pixels[i * chw..(i + 1) * chw];
        match plan.crop_pad {
            Some(pad) => {
                let dx = rng.random_range(0..=2 * pad);
                let dy = rng.random_range(0..=2 * pad);
                let flip = rng.random_bool(0.5);
                draws.push(Draw {
                    index: i,
                    crop: Some((dx, dy, flip)),
                });
                let out = crop_flip_one(img, c, h, w, pad, dx, dy, flip)?;
                plan.norm.push(&out, h * w, pixels);
            }
            None => {
                draws.push(Draw {
                    index: i,
                    crop: None,
                });
                plan.norm.push(img, h * w, pixels);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::RngCore;

    use super::*;
    use crate::samplers::epoch_rng;

    /// The draws a batch reports rebuild its pixels exactly: the lockstep record's `index` and
    /// `crop` are what the model saw, so a replay may redraw one of them and keep the rest.
    #[test]
    fn a_batch_is_rebuilt_from_its_draws() {
        let (c, h, w, n) = (2, 5, 6, 11);
        let set = ImageSet {
            pixels: (0..n * c * h * w).map(|i| (i * 37 % 251) as u8).collect(),
            labels: (0..n as u32).map(|i| i % 3).collect(),
            channels: c,
            height: h,
            width: w,
            class_names: vec!["a".into(), "b".into(), "c".into()],
        };
        let norm = Normalizer {
            mean: vec![0.25, 0.5],
            std: vec![0.5, 2.0],
        };
        let order: Vec<usize> = (0..n).rev().chain([3, 3]).collect();
        for crop_pad in [None, Some(2)] {
            let images = Images::from(set.clone());
            let plan = EpochPlan {
                set: &images,
                order: order.clone(),
                batch_size: 4,
                crop_pad,
                transform: None,
                norm: &norm,
                mixer: None,
                class_counts: &[4, 4, 3],
                seed: 9,
                views: 1,
                second: None,
                at: (0, 1),
            };
            let mut seen = Vec::new();
            for_each_batch(plan, |b: Batch| -> Result<(), super::super::TrainError> {
                assert_eq!(b.draws.len(), b.len());
                let mut rebuilt = Vec::new();
                for (d, &label) in b.draws.iter().zip(&b.labels) {
                    seen.push(d.index);
                    assert_eq!(label, set.labels[d.index]);
                    let img = &set.pixels[d.index * c * h * w..(d.index + 1) * c * h * w];
                    assert_eq!(d.crop.is_some(), crop_pad.is_some());
                    let img = match (d.crop, crop_pad) {
                        (Some((dx, dy, flip)), Some(pad)) => {
                            crop_flip_one(img, c, h, w, pad, dx, dy, flip)?
                        }
                        _ => img.to_vec(),
                    };
                    norm.push(&img, h * w, &mut rebuilt);
                }
                assert_eq!(rebuilt, b.pixels);
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, order);
        }
    }

    /// A second stream changes none of the main batches (its crops are drawn after theirs),
    /// comes in batches of the same sizes beside them, and is rebuilt from its own draws.
    #[test]
    fn a_second_stream_leaves_the_main_batches_as_they_were() {
        let (c, h, w, n) = (1, 4, 5, 9);
        let set = ImageSet {
            pixels: (0..n * c * h * w).map(|i| (i * 53 % 241) as u8).collect(),
            labels: (0..n as u32).map(|i| i % 3).collect(),
            channels: c,
            height: h,
            width: w,
            class_names: vec!["a".into(), "b".into(), "c".into()],
        };
        let norm = Normalizer {
            mean: vec![0.5],
            std: vec![0.25],
        };
        let images = Images::from(set.clone());
        let order: Vec<usize> = (0..n).collect();
        let second: Vec<usize> = (0..n).map(|i| (i * 4 + 1) % n).collect();
        let batches = |second: Option<Vec<usize>>| {
            let plan = EpochPlan {
                set: &images,
                order: order.clone(),
                batch_size: 4,
                crop_pad: Some(1),
                transform: None,
                norm: &norm,
                mixer: None,
                class_counts: &[3, 3, 3],
                seed: 5,
                views: 1,
                second,
                at: (0, 1),
            };
            let mut out = Vec::new();
            for_each_batch(plan, |b: Batch| -> Result<(), super::super::TrainError> {
                out.push(b);
                Ok(())
            })
            .unwrap();
            out
        };
        let alone = batches(None);
        let with = batches(Some(second.clone()));
        assert_eq!(alone.len(), with.len());
        let mut drawn = Vec::new();
        for (a, b) in alone.iter().zip(&with) {
            assert!(a.second.is_none());
            assert_eq!(
                (&a.pixels, &a.labels, &a.draws),
                (&b.pixels, &b.labels, &b.draws)
            );
            let s = b.second.as_ref().expect("a second batch");
            assert_eq!(s.labels.len(), b.len());
            let mut rebuilt = Vec::new();
            for (d, &label) in s.draws.iter().zip(&s.labels) {
                drawn.push(d.index);
                assert_eq!(label, set.labels[d.index]);
                let (dx, dy, flip) = d.crop.expect("crop+flip is on");
                let img = &set.pixels[d.index * h * w..(d.index + 1) * h * w];
                norm.push(
                    &crop_flip_one(img, c, h, w, 1, dx, dy, flip).unwrap(),
                    h * w,
                    &mut rebuilt,
                );
            }
            assert_eq!(rebuilt, s.pixels);
        }
        assert_eq!(drawn, second);
    }

    #[test]
    fn augmentation_draws_are_not_the_samplers_draws() {
        for epoch in [0usize, 1, 7] {
            let seed = 42 ^ (epoch as u64).wrapping_mul(0x9E37_79B9);
            let mut a = augment_rng(seed);
            let mut s = epoch_rng(seed, epoch);
            let a: Vec<u64> = (0..64).map(|_| a.next_u64()).collect();
            let s: Vec<u64> = (0..64).map(|_| s.next_u64()).collect();
            let shared = a.iter().filter(|x| s.contains(x)).count();
            assert_eq!(shared, 0, "epoch {epoch}: the streams overlap");
        }
    }
}
