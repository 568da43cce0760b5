//! A run's split as the training loop sees it: decoded in memory (the small benchmarks, a few
//! hundred MB at most) or streamed from files (the large ones). Both give labels, classes and the
//! geometry of the tensors the model sees; only the batch producer and evaluation tell them apart.

use super::file_set::FileSet;
use super::{ImageSet, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Images {
    Memory(ImageSet),
    Files(FileSet),
}

impl Images {
    pub fn labels(&self) -> &[u32] {
        match self {
            Images::Memory(s) => &s.labels,
            Images::Files(f) => &f.labels,
        }
    }

    pub fn class_names(&self) -> &[String] {
        match self {
            Images::Memory(s) => &s.class_names,
            Images::Files(f) => &f.class_names,
        }
    }

    pub fn num_classes(&self) -> usize {
        self.class_names().len()
    }

    pub fn len(&self) -> usize {
        self.labels().len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels().is_empty()
    }

    /// `[channels, height, width]` of one image as the model sees it.
    pub fn shape(&self) -> [usize; 3] {
        match self {
            Images::Memory(s) => [s.channels, s.height, s.width],
            Images::Files(f) => [3, f.side, f.side],
        }
    }

    /// Images per class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.num_classes()];
        for &l in self.labels() {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// The first `n` images in memory (files through the evaluation transform).
    pub fn head(&self, n: usize) -> Result<ImageSet> {
        match self {
            Images::Memory(s) => Ok(s.subset(&(0..n.min(s.len())).collect::<Vec<_>>())),
            Images::Files(f) => f.head(n),
        }
    }

    /// The in-memory set, when it is one.
    pub fn memory(&self) -> Option<&ImageSet> {
        match self {
            Images::Memory(s) => Some(s),
            Images::Files(_) => None,
        }
    }
}

impl From<ImageSet> for Images {
    fn from(s: ImageSet) -> Self {
        Images::Memory(s)
    }
}
