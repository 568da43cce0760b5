//! Cross-checks of an export against another framework: a batch of inputs and the logits cauda
//! computes for them, written as JSON next to an exported file so `bench/export_check.py` can
//! run the same inputs through PyTorch and compare.

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::models::Classifier;

/// Inputs `[N, C, H, W]` (already normalized, row-major) and cauda's logits `[N, classes]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckCase {
    pub shape: [usize; 4],
    pub inputs: Vec<f32>,
    pub classes: usize,
    pub logits: Vec<f32>,
}

/// The logits of `model` (in evaluation mode on a plain device) for `inputs` of `shape`.
/// `None` when `inputs` does not hold `shape`'s number of values.
pub fn check_case(model: &Classifier, inputs: Vec<f32>, shape: [usize; 4]) -> Option<CheckCase> {
    if inputs.len() != shape.iter().product::<usize>() {
        return None;
    }
    // The model's own device (a plain one: `valid()` drops autodiff), whatever the backend.
    let m = model.valid();
    let device = m
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(crate::train::host_device);
    let x = Tensor::<4>::from_data(TensorData::new(inputs.clone(), shape), &device);
    let z = m.forward(x);
    let classes = z.dims()[1];
    let logits = z.into_data().try_into_vec::<f32>().ok()?;
    Some(CheckCase {
        shape,
        inputs,
        classes,
        logits,
    })
}

/// A case of the first `n` images of `set`, normalized as training normalized them.
pub fn case_from_images(
    model: &Classifier,
    set: &crate::data::ImageSet,
    norm: &crate::train::Normalizer,
    n: usize,
) -> Option<CheckCase> {
    let n = n.min(set.len());
    let (c, h, w) = (set.channels, set.height, set.width);
    let chw = c * h * w;
    let mut inputs = Vec::with_capacity(n * chw);
    for img in set.pixels.get(..n * chw)?.chunks_exact(chw) {
        norm.push(img, h * w, &mut inputs);
    }
    check_case(model, inputs, [n, c, h, w])
}
