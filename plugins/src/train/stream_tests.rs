//! The file pipeline: results in order whatever thread built them, an image's draws fixed by
//! its position in the epoch (so a resumed epoch rebuilds the same batches), errors naming the
//! split file and line, and evaluation batches equal to the evaluation transform.

use std::path::Path;

use image::RgbImage;

use super::*;
use crate::augment::color_jitter::ColorJitter;
use crate::data::split_list::ListEntry;
use crate::train::{EpochPlan, TrainError, for_each_batch};

fn files(dir: &Path, n: usize) -> FileSet {
    let mut entries = Vec::new();
    for i in 0..n {
        let (w, h) = (20 + (i * 7) % 30, 18 + (i * 11) % 40);
        let img = RgbImage::from_fn(w as u32, h as u32, |x, y| {
            image::Rgb([(x * 9 + i as u32) as u8, (y * 5) as u8, (x * y) as u8])
        });
        let rel = format!("c{}/img{i}.png", i % 3);
        std::fs::create_dir_all(dir.join(format!("c{}", i % 3))).unwrap();
        img.save(dir.join(&rel)).unwrap();
        entries.push(ListEntry {
            path: rel.into(),
            label: (i % 3) as u32,
            line: i + 1,
        });
    }
    FileSet::new(
        dir,
        &dir.join("train.txt"),
        entries,
        vec!["a".into(), "b".into(), "c".into()],
        16,
    )
}

fn norm() -> Normalizer {
    Normalizer {
        mean: vec![0.5, 0.4, 0.3],
        std: vec![0.2, 0.25, 0.3],
    }
}

fn transform() -> TrainTransform {
    TrainTransform {
        side: 16,
        flip: true,
        jitter: Some(ColorJitter {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
        }),
    }
}

#[test]
fn parallel_results_keep_their_order_and_the_first_error_names_its_line() {
    let items: Vec<usize> = (0..200).rev().collect();
    let mut out = vec![0usize; items.len()];
    fill_parallel(&mut out, 1, &items, |i, slot| {
        slot[0] = i * 2;
        Ok(())
    })
    .unwrap();
    assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    let dir = tempfile::tempdir().unwrap();
    let set = files(dir.path(), 6);
    std::fs::write(dir.path().join(&set.entries[4].path), b"not an image").unwrap();
    let mut images = vec![0u8; 6 * 3 * 16 * 16];
    let err = fill_parallel(&mut images, 3 * 16 * 16, &[0, 1, 2, 3, 4, 5], |i, slot| {
        slot.copy_from_slice(&set.eval_image(i)?);
        Ok(())
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("train.txt") && err.contains("line 5"), "{err}");
}

#[test]
fn normalizing_interleaved_pixels_gives_the_planar_path_values() {
    let img = crate::augment::resample::Rgb {
        width: 5,
        height: 3,
        pixels: (0..45).map(|i| (i * 37 % 256) as u8).collect(),
    };
    let mut planar = Vec::new();
    norm().push(&img.to_chw(), 15, &mut planar);
    let mut direct = vec![0f32; 45];
    norm().write_hwc(&img.pixels, &mut direct);
    assert_eq!(planar, direct);
}

#[test]
fn an_images_draws_depend_on_its_position_not_on_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let set = files(dir.path(), 12);
    let (t, n) = (transform(), norm());
    let order = [3usize, 7, 1, 9, 0, 11];
    let whole = train_batch(&set, &order, 0, 42, Some(&t), &n).unwrap();
    // The last two images rebuilt alone at their positions: the same pixels.
    let tail = train_batch(&set, &order[4..], 4, 42, Some(&t), &n).unwrap();
    let per = 3 * 16 * 16;
    assert_eq!(&whole.pixels[4 * per..], &tail.pixels[..]);
    assert_eq!(tail.labels, [0, 2]);
    // Another seed draws other crops.
    let other = train_batch(&set, &order, 0, 43, Some(&t), &n).unwrap();
    assert_ne!(other.pixels, whole.pixels);
    // Without a transform an image gets the evaluation transform.
    let plain = train_batch(&set, &order[..1], 0, 42, None, &n).unwrap();
    assert_eq!(plain.pixels, eval_batch(&set, 3..4, &n).unwrap());
}

#[test]
fn an_epoch_of_files_is_the_same_every_time_and_covers_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let set = crate::data::Images::Files(files(dir.path(), 10));
    let n = norm();
    let order: Vec<usize> = vec![9, 2, 2, 5, 0, 1, 8, 3, 4, 6, 7];
    let run = || {
        let plan = EpochPlan {
            set: &set,
            order: order.clone(),
            batch_size: 4,
            crop_pad: Some(4),
            transform: Some(transform()),
            norm: &n,
            mixer: None,
            class_counts: &[4, 3, 3],
            seed: 7,
            views: 1,
            second: None,
            at: (0, 1),
        };
        let mut batches = Vec::new();
        for_each_batch(plan, |b| -> Result<(), TrainError> {
            batches.push(b);
            Ok(())
        })
        .unwrap();
        batches
    };
    let (a, b) = (run(), run());
    assert_eq!(a.len(), 3);
    let seen: Vec<usize> = a
        .iter()
        .flat_map(|b| b.draws.iter().map(|d| d.index))
        .collect();
    assert_eq!(seen, order);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.pixels, y.pixels);
        assert_eq!(x.pixels.len(), x.len() * 3 * 16 * 16);
    }
    // The same image twice in an epoch is cropped twice, differently.
    let per = 3 * 16 * 16;
    assert_ne!(a[0].pixels[per..2 * per], a[0].pixels[2 * per..3 * per]);
}
