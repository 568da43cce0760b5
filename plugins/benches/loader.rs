//! Images per second of the split-file input pipeline, the training side of
//! `bench/loader.sh` (which runs PyTorch's `DataLoader` on the same JPEG folder beside it).
//!
//! One epoch over `ROOT/LIST` (`relative/path label` lines) in a seeded random order, batches of
//! `CAUDA_LOADER_BATCH` (64) built exactly as training builds them (read, decode,
//! RandomResizedCrop(224) + flip + ColorJitter(0.4, 0.4, 0.4), normalize; on
//! `CAUDA_LOADER_THREADS` threads, default all cores) and handed to a step that only drops them.
//! The first batch (thread start, cold caches) is not timed, as on the PyTorch side. Prints one
//! JSON line: images/s, threads, peak resident memory.
//!
//! `cargo bench -p cauda-plugins --bench loader -- ROOT LIST [EPOCHS]`

use std::path::PathBuf;
use std::time::Instant;

use cauda_plugins::augment::color_jitter::ColorJitter;
use cauda_plugins::augment::imagenet::TrainTransform;
use cauda_plugins::data::Images;
use cauda_plugins::data::list_set::{ListFormat, ListSource};
use cauda_plugins::train::stream::loader_threads;
use cauda_plugins::train::{EpochPlan, Normalizer, TrainError, for_each_batch};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Milliseconds per image of each stage, on one thread over the first 200 images (stderr).
fn breakdown(set: &Images, t: &TrainTransform, norm: &Normalizer) {
    let Images::Files(files) = set else { return };
    let n = files.len().min(200);
    let (mut read, mut decode, mut crop, mut jitter, mut tail) = (0f64, 0f64, 0f64, 0f64, 0f64);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for i in 0..n {
        let t0 = Instant::now();
        let bytes = std::fs::read(files.root.join(&files.entries[i].path)).unwrap();
        let t1 = Instant::now();
        let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
        let img = cauda_plugins::augment::resample::Rgb {
            width: img.width() as usize,
            height: img.height() as usize,
            pixels: img.into_raw(),
        };
        let t2 = Instant::now();
        decode += (t2 - t1).as_secs_f64();
        let (_, draw) = t.apply(&img, &mut rng);
        let plain = TrainTransform { jitter: None, ..*t };
        let t2 = Instant::now();
        let out = plain.apply_draw(&img, &draw);
        let t3 = Instant::now();
        let mut out2 = out.clone();
        if let Some(j) = &draw.jitter {
            cauda_plugins::augment::color_jitter::apply_jitter(&mut out2, j);
        }
        let t4 = Instant::now();
        let mut px = Vec::new();
        norm.push(&out2.to_chw(), 224 * 224, &mut px);
        let t5 = Instant::now();
        read += (t1 - t0).as_secs_f64();
        crop += (t3 - t2).as_secs_f64();
        jitter += (t4 - t3).as_secs_f64();
        tail += (t5 - t4).as_secs_f64();
    }
    let ms = |s: f64| s * 1e3 / n as f64;
    eprintln!(
        "per image, one thread: read {:.2} ms, decode {:.2} ms, crop+resize+flip {:.2} ms, jitter {:.2} ms, to CHW + normalize {:.2} ms",
        ms(read),
        ms(decode),
        ms(crop),
        ms(jitter),
        ms(tail)
    );
}

/// Peak resident set of this process, MB (`VmHWM`).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(root), Some(list)) = (args.first(), args.get(1)) else {
        eprintln!("usage: cargo bench -p cauda-plugins --bench loader -- ROOT LIST [EPOCHS]");
        std::process::exit(2);
    };
    let epochs: usize = args.get(2).and_then(|e| e.parse().ok()).unwrap_or(1);
    let batch: usize = std::env::var("CAUDA_LOADER_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(64);
    let source = ListSource {
        format: ListFormat::Text,
        root: PathBuf::from(root),
        train: PathBuf::from(list),
        val: None,
        test: PathBuf::from(list),
        image_size: 224,
        pinned: None,
    };
    let loaded = source.load().expect("the bench's list");
    let set = Images::Files(loaded.train);
    let norm = Normalizer {
        mean: vec![0.485, 0.456, 0.406],
        std: vec![0.229, 0.224, 0.225],
    };
    let transform = TrainTransform {
        side: 224,
        flip: true,
        jitter: Some(ColorJitter {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
        }),
    };
    if std::env::var_os("CAUDA_LOADER_BREAKDOWN").is_some() {
        breakdown(&set, &transform, &norm);
    }
    let counts = set.class_counts();
    let (mut images, mut seconds) = (0usize, 0f64);
    for epoch in 0..epochs {
        let mut order: Vec<usize> = (0..set.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(epoch as u64));
        let plan = EpochPlan {
            set: &set,
            order,
            batch_size: batch,
            crop_pad: Some(0),
            transform: Some(transform),
            norm: &norm,
            mixer: None,
            class_counts: &counts,
            seed: epoch as u64,
            views: 1,
            second: None,
            at: (0, 1),
        };
        let mut started = None;
        for_each_batch(plan, |b| -> Result<(), TrainError> {
            match started {
                None => started = Some(Instant::now()),
                Some(_) => images += b.len(),
            }
            std::hint::black_box(&b.pixels);
            Ok(())
        })
        .expect("an epoch of batches");
        seconds += started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    }
    let ips = images as f64 / seconds.max(1e-9);
    println!(
        "{{\"side\": \"cauda\", \"images\": {images}, \"seconds\": {seconds:.3}, \"images_per_sec\": {ips:.1}, \"threads\": {}, \"batch\": {batch}, \"peak_rss_mb\": {:.0}}}",
        loader_threads(),
        peak_rss_mb()
    );
}
