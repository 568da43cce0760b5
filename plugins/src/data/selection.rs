//! From per-class selections to a split: the validation hold-out from the images a selection
//! left out (step 5 of `longtail.rs`), the balanced variant of the same size, and the split's
//! index lists and content hash. The long-tailed profile (`longtail.rs`) and split files
//! (`split_file.rs`) both end here, so the two kinds of split follow the same rules.

use crate::hex::ToHex;
use std::collections::HashSet;

use sha2::{Digest, Sha256};

use super::longtail::{LongTailError, LtSplit};

/// Per-class training and per-class validation index lists.
pub(crate) type TrainVal = (Vec<Vec<usize>>, Vec<Vec<usize>>);

/// Step 5: per class, `val_per_class` images not in `selected` (in shuffled order), the
/// shortfall taken from the end of the selection. Returns (training, validation) per class.
pub(crate) fn hold_out(
    shuffled: &[Vec<usize>],
    selected: Vec<Vec<usize>>,
    val_per_class: usize,
) -> Result<TrainVal, LongTailError> {
    let mut val = Vec::with_capacity(selected.len());
    let mut train = Vec::with_capacity(selected.len());
    for (class, (all, mut chosen)) in shuffled.iter().zip(selected).enumerate() {
        if all.len() <= val_per_class {
            return Err(LongTailError::TooFewImages {
                class,
                available: all.len(),
                val_per_class,
            });
        }
        let taken: HashSet<usize> = chosen.iter().copied().collect();
        let mut held: Vec<usize> = all
            .iter()
            .copied()
            .filter(|i| !taken.contains(i))
            .take(val_per_class)
            .collect();
        let short = val_per_class - held.len();
        if short > 0 {
            // `all.len() > val_per_class` and the selection is a subset of `all`, so the
            // selection has more than `short` images.
            held.extend(chosen.split_off(chosen.len().saturating_sub(short)));
        }
        train.push(chosen);
        val.push(held);
    }
    Ok((train, val))
}

/// The balanced variant of `train` (same total, `total / C` per class, the remainder one each
/// to the first classes) drawn from each class's `pools` without its `val` images.
pub(crate) fn balanced_from(
    pools: &[&[usize]],
    train: &[Vec<usize>],
    val: Vec<Vec<usize>>,
) -> Result<TrainVal, LongTailError> {
    let classes = pools.len();
    let total: usize = train.iter().map(Vec::len).sum();
    let (base, extra) = (total / classes, total % classes);
    let mut out = Vec::with_capacity(classes);
    for (class, (pool, held)) in pools.iter().zip(&val).enumerate() {
        let held: HashSet<usize> = held.iter().copied().collect();
        let pool: Vec<usize> = pool.iter().copied().filter(|i| !held.contains(i)).collect();
        let needed = base + usize::from(class < extra);
        if needed > pool.len() {
            return Err(LongTailError::BalancedShort {
                class,
                needed,
                available: pool.len(),
            });
        }
        out.push(pool[..needed].to_vec());
    }
    Ok((out, val))
}

/// The split of per-class training and validation lists: class after class, with its hash.
pub(crate) fn assemble((train, val): TrainVal) -> LtSplit {
    let class_counts = train.iter().map(Vec::len).collect();
    let train_indices = train.concat();
    let val_indices = val.concat();
    let mut hasher = Sha256::new();
    for &i in train_indices.iter().chain(&val_indices) {
        hasher.update((i as u64).to_le_bytes());
    }
    let hash = hasher.finalize().to_hex();
    LtSplit {
        train_indices,
        val_indices,
        class_counts,
        hash,
    }
}
