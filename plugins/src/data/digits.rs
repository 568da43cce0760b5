//! scikit-learn's 8x8 hand-written digits (the UCI "Optical Recognition of Handwritten Digits"
//! test set, 1797 images, 10 classes), embedded in the binary so tests and demos need no files.
//! Source and licence: `plugins/assets/LICENSE-digits.md`.
//!
//! Pixels (0..16 counts) are scaled to 0..255 as `round(v * 255 / 16)` with halves rounded up,
//! i.e. `(v * 255 + 8) / 16` in integers. Train/test split, deterministic: per class, the indices
//! of that class in file order are shuffled with ChaCha8 keyed by [`SPLIT_SEED`] on stream
//! `class`; the first `floor(n_class / 5)` (20 %) go to test, the rest to train. Both sets keep
//! the file order (355 test, 1442 train images).

use std::io::Read;
use std::path::PathBuf;

use super::shuffle::{shuffle, stream_rng};
use super::{DataError, ImageSet, Result, TrainTest, numbered_classes};

static DIGITS_CSV_GZ: &[u8] = include_bytes!("../../assets/digits.csv.gz");

/// Seed of the fixed train/test split.
pub const SPLIT_SEED: u64 = 0x00d1_9175;

const SIDE: usize = 8;

fn embedded_path() -> PathBuf {
    PathBuf::from("<embedded>/plugins/assets/digits.csv.gz")
}

/// The full 1797-image set (1 channel, 8x8, labels 0..9), in file order.
pub fn load_all() -> Result<ImageSet> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|source| DataError::Io {
            path: embedded_path(),
            source,
        })?;
    let mut set = ImageSet {
        pixels: Vec::with_capacity(1797 * SIDE * SIDE),
        labels: Vec::with_capacity(1797),
        channels: 1,
        height: SIDE,
        width: SIDE,
        class_names: numbered_classes(10),
    };
    let mut offset = 0u64;
    for line in text.split_inclusive('\n') {
        let row = line.trim_end();
        if !row.is_empty() {
            parse_row(row, offset, &mut set)?;
        }
        offset += line.len() as u64;
    }
    Ok(set)
}

/// Parses `64 pixel values, label` into `set`; `offset` is the line's byte offset.
fn parse_row(row: &str, offset: u64, set: &mut ImageSet) -> Result<()> {
    let bad = |message: String| DataError::Malformed {
        path: embedded_path(),
        offset,
        message,
    };
    let fields: Vec<&str> = row.split(',').collect();
    if fields.len() != SIDE * SIDE + 1 {
        return Err(bad(format!(
            "expected 65 comma-separated values, found {}",
            fields.len()
        )));
    }
    let mut values = [0u32; SIDE * SIDE + 1];
    for (v, f) in values.iter_mut().zip(&fields) {
        let x: f64 = f
            .trim()
            .parse()
            .map_err(|_| bad(format!("expected a number, found {f:?}")))?;
        if !(0.0..=16.0).contains(&x) || x.fract() != 0.0 {
            return Err(bad(format!("expected an integer in 0..=16, found {f}")));
        }
        *v = x as u32;
    }
    let label = values[SIDE * SIDE];
    if label > 9 {
        return Err(bad(format!("expected a label in 0..=9, found {label}")));
    }
    set.pixels.extend(
        values[..SIDE * SIDE]
            .iter()
            .map(|&v| ((v * 255 + 8) / 16) as u8),
    );
    set.labels.push(label);
    Ok(())
}

/// The embedded digits with the fixed 80/20 per-class split described in the module docs.
pub fn load() -> Result<TrainTest> {
    let all = load_all()?;
    let mut is_test = vec![false; all.len()];
    for class in 0..all.num_classes() {
        let mut idx: Vec<usize> = (0..all.len())
            .filter(|&i| all.labels[i] as usize == class)
            .collect();
        shuffle(&mut idx, &mut stream_rng(SPLIT_SEED, class as u64));
        for &i in &idx[..idx.len() / 5] {
            is_test[i] = true;
        }
    }
    let (test, train): (Vec<usize>, Vec<usize>) = (0..all.len()).partition(|&i| is_test[i]);
    Ok(TrainTest {
        train: all.subset(&train),
        test: all.subset(&test),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> serde_json::Value {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/datasets.json"
        ));
        serde_json::from_str::<serde_json::Value>(text).unwrap()["digits"].clone()
    }

    #[test]
    fn embedded_digits_match_numpy() {
        let want = fixture();
        let all = load_all().unwrap();
        assert_eq!(all.len(), 1797);
        all.validate().unwrap();
        assert_eq!(serde_json::json!(all.class_counts()), want["class_counts"]);
        let sum: u64 = all.pixels.iter().map(|&p| u64::from(p)).sum();
        assert_eq!(sum, want["pixel_sum"].as_u64().unwrap());
        assert_eq!(serde_json::json!(all.image(0)), want["first_image"]);
        assert_eq!(
            u64::from(all.labels[0]),
            want["first_label"].as_u64().unwrap()
        );
        assert_eq!(
            u64::from(all.labels[1796]),
            want["last_label"].as_u64().unwrap()
        );
    }

    #[test]
    fn split_is_fixed_20_percent_per_class() {
        let tt = load().unwrap();
        assert_eq!((tt.train.len(), tt.test.len()), (1442, 355));
        assert_eq!(
            serde_json::json!(tt.test.class_counts()),
            fixture()["test_counts"]
        );
        assert_eq!(load().unwrap(), tt);
        // Disjoint: every image of the full set lands in exactly one part (checked by multiset).
        let all = load_all().unwrap();
        let mut seen: Vec<&[u8]> = (0..tt.train.len())
            .map(|i| tt.train.image(i))
            .chain((0..tt.test.len()).map(|i| tt.test.image(i)))
            .collect();
        let mut full: Vec<&[u8]> = (0..all.len()).map(|i| all.image(i)).collect();
        seen.sort_unstable();
        full.sort_unstable();
        assert_eq!(seen, full);
    }

    #[test]
    fn malformed_rows_are_reported_with_offset() {
        let mut set = load_all().unwrap();
        let err = parse_row("1,2,3", 42, &mut set).unwrap_err().to_string();
        assert!(err.contains("at byte 42") && err.contains("65"), "{err}");
        let row = format!("{}12", "0,".repeat(64));
        assert!(
            parse_row(&row, 0, &mut set)
                .unwrap_err()
                .to_string()
                .contains("0..=9")
        );
        let row = format!("{}1", "0,".repeat(63) + "17,");
        assert!(
            parse_row(&row, 0, &mut set)
                .unwrap_err()
                .to_string()
                .contains("0..=16")
        );
    }
}
