//! Nearest class mean (Kang et al., "Decoupling Representation and Classifier for Long-Tailed
//! Recognition", ICLR 2020, Sec. 4 "NCM"; facebookresearch/classifier-balancing
//! `KNNClassifier` with `feat_type = 'l2n'`, `dist_type = 'cos'`): after stage 1 the classifier
//! is replaced, without training, by the mean of each class' L2-normalized training features
//! (no augmentation, evaluation mode), and an image goes to the class whose mean is most
//! cosine-similar to its features. Every class gets one mean however few images it has, which
//! is why it is a balanced classifier.
//!
//! Left out: the code's default `cl2n` features (centered by the training mean before the
//! normalization) and Euclidean distance; the cosine of `l2n` features is one of its options.

use super::{Stage2Method, Stage2Plan};
use crate::registry::Params;

#[derive(Debug, Clone)]
pub struct Ncm {
    scale: f32,
}

impl Ncm {
    pub fn from_params(p: &Params) -> Self {
        Self {
            scale: p.get("scale") as f32,
        }
    }
}

impl Stage2Method for Ncm {
    fn shares_stage1(&self) -> bool {
        true
    }

    fn plan(&self) -> Stage2Plan {
        Stage2Plan::NearestClassMean { scale: self.scale }
    }
}
