//! The split-file pipeline's memory stays bounded by the batches in flight, not the data set:
//! an epoch over 3,000 generated JPEGs (as 112x112 crops they would take 113 MB in memory as
//! bytes, 452 MB as the f32 the model reads) in batches of 16 must raise the process' peak
//! resident set (from before the first epoch to after the second) by far less than the set would take. The peak is the kernel's high-water mark
//! (`VmHWM`), reset before the epoch through `/proc/self/clear_refs`; the only test in its
//! binary, so no other test's allocations count.

use std::path::Path;

use cauda_plugins::augment::color_jitter::ColorJitter;
use cauda_plugins::augment::imagenet::TrainTransform;
use cauda_plugins::data::Images;
use cauda_plugins::data::list_set::{ListFormat, ListSource};
use cauda_plugins::train::{EpochPlan, Normalizer, TrainError, for_each_batch};
use image::RgbImage;

const IMAGES: usize = 3000;
const SIDE: usize = 112;
const BATCH: usize = 16;

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/self/status"))
}

fn generate(root: &Path) {
    let mut list = String::new();
    for i in 0..IMAGES {
        let (w, h) = if i % 2 == 0 { (160, 120) } else { (120, 170) };
        let img = RgbImage::from_fn(w, h, |x, y| {
            let v = (x * 31 + y * 17 + i as u32 * 7) ^ (x * y);
            image::Rgb([v as u8, (v >> 3) as u8, (x + y) as u8])
        });
        let rel = format!("train/c{}/{i}.jpg", i % 10);
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        img.save(&path).unwrap();
        list.push_str(&format!("{rel} {}\n", i % 10));
    }
    std::fs::write(root.join("train.txt"), list).unwrap();
}

#[test]
fn an_epoch_of_files_holds_a_few_batches_not_the_set() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path());
    let source = ListSource {
        format: ListFormat::Text,
        root: dir.path().to_path_buf(),
        train: "train.txt".into(),
        val: None,
        test: "train.txt".into(),
        image_size: SIDE,
        pinned: None,
    };
    let set = Images::Files(source.load().unwrap().train);
    let norm = Normalizer {
        mean: vec![0.485, 0.456, 0.406],
        std: vec![0.229, 0.224, 0.225],
    };
    let counts = set.class_counts();
    let transform = TrainTransform {
        side: SIDE,
        flip: true,
        jitter: Some(ColorJitter {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
        }),
    };
    let epoch = |seed: u64| {
        let plan = EpochPlan {
            set: &set,
            order: (0..IMAGES).rev().collect(),
            batch_size: BATCH,
            crop_pad: Some(0),
            transform: Some(transform),
            norm: &norm,
            mixer: None,
            class_counts: &counts,
            seed,
            views: 1,
            second: None,
            at: (0, 1),
        };
        let mut seen = 0;
        for_each_batch(plan, |b| -> Result<(), TrainError> {
            seen += b.len();
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, IMAGES);
    };
    // The first epoch, from a cold allocator (threads' arenas, first batches) is measured, then
    // a second one must not grow past it.
    let reset = std::fs::write("/proc/self/clear_refs", "5");
    assert!(
        reset.is_ok(),
        "cannot reset the peak RSS through /proc/self/clear_refs: {reset:?}"
    );
    let base_kb = status_kb("VmRSS:");
    epoch(1);
    epoch(2);
    let grew_mb = status_kb("VmHWM:").saturating_sub(base_kb) as f64 / 1024.0;
    let set_mb = (IMAGES * 3 * SIDE * SIDE) as f64 / (1024.0 * 1024.0);
    let batch_mb = (BATCH * 3 * SIDE * SIDE * 4) as f64 / (1024.0 * 1024.0);
    println!(
        "peak RSS grew {grew_mb:.1} MB over an epoch; the set would take {set_mb:.0} MB as bytes, \
         a batch is {batch_mb:.1} MB"
    );
    assert!(
        grew_mb < 40.0 && grew_mb < set_mb / 2.5,
        "the pipeline's peak grew {grew_mb:.1} MB: more than a few {batch_mb:.1} MB batches"
    );
}
