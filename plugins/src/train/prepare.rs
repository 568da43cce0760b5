//! From a spec's `[data]` section to the run's images: load the data set, cut the long-tailed
//! (or balanced-variant) training split, or take a split file's, and the validation hold-out,
//! fit or look up the normalization, and describe the split in a file that
//! `bench/reference.py` reads to train on the same images.

use serde::{Deserialize, Serialize};

use super::batches::Normalizer;
use crate::data::list_set::{ListFormat, ListSource};
use crate::data::longtail::{LtConfig, LtProfile, LtSplit, balanced_variant, long_tail_split};
use crate::data::split_file::{read_split_file, split_from_file};
use crate::data::{
    DataError, DataFormat, FileSet, ImageSet, Images, SyntheticConfig, TrainTest, source, synthetic,
};
use crate::spec::{DataSection, check_pin};

/// The images of one run.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub train: Images,
    pub val: Option<Images>,
    pub test: Images,
    /// Training images per class.
    pub class_counts: Vec<usize>,
    pub split_hash: String,
    pub norm: Normalizer,
    /// Indices of the training and validation images in the data set's training part.
    pub train_indices: Vec<usize>,
    pub val_indices: Vec<usize>,
}

/// The split as a file: enough for another implementation to train on exactly these images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitFile {
    pub format: DataFormat,
    pub path: Option<std::path::PathBuf>,
    pub class_counts: Vec<usize>,
    pub split_hash: String,
    pub train_indices: Vec<usize>,
    pub val_indices: Vec<usize>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Prepared {
    pub fn split_file(&self, data: &DataSection) -> SplitFile {
        SplitFile {
            format: data.format,
            path: data.path.clone(),
            class_counts: self.class_counts.clone(),
            split_hash: self.split_hash.clone(),
            train_indices: self.train_indices.clone(),
            val_indices: self.val_indices.clone(),
            mean: self.norm.mean.clone(),
            std: self.norm.std.clone(),
        }
    }
}

/// Loads and splits the data a `[data]` section names.
pub fn prepare(data: &DataSection) -> Result<Prepared, DataError> {
    if data.format.is_list() {
        return prepare_lists(data);
    }
    let tt = match data.format {
        DataFormat::Synthetic => {
            let cfg = data
                .synthetic
                .clone()
                .unwrap_or_else(|| SyntheticConfig::new(10, 200, 50, 0));
            synthetic::generate(&cfg)?
        }
        format => source::load(format, data.path.as_deref())?,
    };
    let split = cut(data, &tt)?;
    let train = tt.train.subset(&split.train_indices);
    let val = (!split.val_indices.is_empty()).then(|| tt.train.subset(&split.val_indices));
    let norm = normalizer(data, &train)?;
    Ok(Prepared {
        train: train.into(),
        val: val.map(Images::from),
        test: tt.test.into(),
        class_counts: split.class_counts,
        split_hash: split.hash,
        norm,
        train_indices: split.train_indices,
        val_indices: split.val_indices,
    })
}

/// A `list` / `inat` data set: the split files are the split (nothing re-sampled), the
/// validation list (if any) is the validation set; the split hash covers the files' bytes.
fn prepare_lists(data: &DataSection) -> Result<Prepared, DataError> {
    let need = |p: &Option<std::path::PathBuf>, key: &str| {
        p.clone().ok_or_else(|| {
            DataError::Invalid(format!("{key}: required for format {:?}", data.format))
        })
    };
    let source = ListSource {
        format: match data.format {
            DataFormat::Inat => ListFormat::Inat,
            _ => ListFormat::Text,
        },
        root: need(&data.path, "data.path")?,
        train: need(&data.train_list, "data.train_list")?,
        val: data.val_list.clone(),
        test: need(&data.test_list, "data.test_list")?,
        image_size: data.image_size.unwrap_or(224),
        // Lists changed since submission would train another split under the same identity.
        pinned: data.lists_sha256.clone(),
    };
    let loaded = source.load()?;
    let train = loaded.train;
    let norm = match data.normalize.constants() {
        Some((mean, std)) => {
            data.normalize
                .check(Some(3))
                .map_err(|m| DataError::Invalid(format!("data.normalize: {m}")))?;
            Normalizer { mean, std }
        }
        None => fit_files(&train)?,
    };
    let train = Images::Files(train);
    Ok(Prepared {
        class_counts: train.class_counts(),
        train_indices: (0..train.len()).collect(),
        train,
        val: loaded.val.map(Images::Files),
        test: Images::Files(loaded.test),
        split_hash: loaded.hash,
        norm,
        val_indices: Vec::new(),
    })
}

/// `data.normalize = "fit"` on files: the statistics of the training images through the
/// evaluation transform, one streamed pass on every core (no image kept).
fn fit_files(train: &FileSet) -> Result<Normalizer, DataError> {
    let hw = train.side * train.side;
    let mut sum = [0f64; 3];
    let mut sq = [0f64; 3];
    let order: Vec<usize> = (0..train.len()).collect();
    for chunk in order.chunks(256) {
        let mut images = vec![0u8; chunk.len() * 3 * hw];
        super::stream::fill_parallel(&mut images, 3 * hw, chunk, |i, slot| {
            slot.copy_from_slice(&train.eval_image(i)?);
            Ok(())
        })?;
        for img in images.chunks_exact(3 * hw) {
            for (ch, plane) in img.chunks_exact(hw).enumerate() {
                for &p in plane {
                    let v = f64::from(p) / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
        }
    }
    let n = (train.len() * hw).max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    Ok(Normalizer {
        std: sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n - m * m).max(0.0).sqrt()).max(1e-6) as f32)
            .collect(),
        mean: mean.into_iter().map(|m| m as f32).collect(),
    })
}

/// The training split: the split file's selection, or the long-tailed profile's.
fn cut(data: &DataSection, tt: &TrainTest) -> Result<LtSplit, DataError> {
    let classes = tt.train.num_classes();
    if let Some(path) = &data.split_file {
        let file = read_split_file(path)?;
        check_pin(data.split_file_sha256.as_deref(), &file.sha256, path)?;
        return split_from_file(
            &file,
            &tt.train.labels,
            classes,
            data.val_per_class,
            data.split_seed,
            data.balanced_variant,
        );
    }
    let (profile, ratio, step_fraction) = match &data.imbalance {
        Some(i) => (i.profile, i.ratio, i.step_fraction.unwrap_or(0.5)),
        None => (LtProfile::Exp, 1.0, 0.5),
    };
    let cfg = LtConfig {
        profile,
        ratio,
        max_per_class: data.max_per_class,
        val_per_class: data.val_per_class,
        split_seed: data.split_seed,
        step_fraction,
    };
    Ok(if data.balanced_variant {
        balanced_variant(&tt.train.labels, classes, &cfg)?
    } else {
        long_tail_split(&tt.train.labels, classes, &cfg)?
    })
}

/// `data.normalize`: fitted on the training split, or the given constants (checked against the
/// images' channel count, which a `folder` data set only tells once loaded).
fn normalizer(data: &DataSection, train: &ImageSet) -> Result<Normalizer, DataError> {
    let Some((mean, std)) = data.normalize.constants() else {
        return Ok(Normalizer::fit(train));
    };
    data.normalize
        .check(Some(train.channels))
        .map_err(|m| DataError::Invalid(format!("data.normalize: {m}")))?;
    Ok(Normalizer { mean, std })
}
