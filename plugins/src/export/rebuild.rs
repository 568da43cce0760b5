//! The recipe's `Classifier` with a checkpoint's weights in it. A checkpoint does not say the
//! image size, and the run's recipe only names the data set, so the few sizes the model's
//! shapes depend on (classes, input channels, the flattened input of the first fully connected
//! layer) are read from the record's own tensor shapes; the spatial size itself is irrelevant to
//! the parameters of every backbone.

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use burn_pack::Reader;

use super::ExportError;
use crate::models::{BackboneKind, Classifier, HeadKind, InputShape};
use crate::spec::ResolvedRun;
use crate::train::Checkpoint;

/// Sizes of a model read off its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// An input shape that gives the recorded parameter shapes (its height and width are
    /// only those of the real images for their product, or not at all for ResNets).
    pub input: InputShape,
    pub classes: usize,
    /// The record holds LWS scales (an LWS stage-2 checkpoint).
    pub has_scales: bool,
    /// The record holds DisAlign's calibration (a DisAlign stage-2 checkpoint).
    pub has_disalign: bool,
    /// The record holds a head bias (a linear head).
    pub has_bias: bool,
}

/// Name and shape of every tensor of a Burn record.
fn record_shapes(record: &[u8]) -> Result<Vec<(String, Vec<usize>)>, ExportError> {
    let err = |e: burn_pack::Error| ExportError::Record(e.to_string());
    let tensors = Reader::from_bytes(Bytes::from_bytes_vec(record.to_vec()))
        .map_err(err)?
        .into_tensors()
        .map_err(err)?;
    Ok(tensors
        .into_iter()
        .map(|t| (t.name, t.shape.to_vec()))
        .collect())
}

/// The shape of the backbone tensor whose path ends in `suffix` (the shortest such path, so
/// LeNet's `conv1` is not confused with a ResNet block's).
fn backbone_shape<'a>(
    shapes: &'a [(String, Vec<usize>)],
    suffix: &str,
) -> Result<&'a [usize], ExportError> {
    shapes
        .iter()
        .filter(|(n, _)| n.starts_with("backbone.") && n.ends_with(suffix))
        .min_by_key(|(n, _)| n.len())
        .map(|(_, s)| s.as_slice())
        .ok_or_else(|| ExportError::Record(format!("no backbone tensor `*{suffix}`")))
}

fn dim(shape: &[usize], i: usize, what: &str) -> Result<usize, ExportError> {
    shape
        .get(i)
        .copied()
        .ok_or_else(|| ExportError::Record(format!("{what} has shape {shape:?}")))
}

/// Reads the sizes a `kind` backbone needs from the record bytes.
pub fn geometry_of(kind: BackboneKind, record: &[u8]) -> Result<Geometry, ExportError> {
    let shapes = record_shapes(record)?;
    let head = shapes
        .iter()
        .find(|(n, _)| n == "head.weight")
        .ok_or_else(|| ExportError::Record("no `head.weight` tensor".into()))?;
    // An expert head stacks its experts' classifiers.
    let classes = dim(&head.1, 0, "head.weight")? / kind.experts();
    let input = match kind {
        BackboneKind::Mlp => {
            // Burn's Linear weight is [in, out].
            let fc1 = backbone_shape(&shapes, ".fc1.weight")?;
            InputShape {
                channels: 1,
                height: 1,
                width: dim(fc1, 0, "fc1.weight")?,
            }
        }
        BackboneKind::LeNet => {
            let conv1 = backbone_shape(&shapes, ".conv1.weight")?;
            let fc1_in = dim(backbone_shape(&shapes, ".fc1.weight")?, 0, "fc1.weight")?;
            if fc1_in % 16 != 0 || fc1_in == 0 {
                return Err(ExportError::Record(format!(
                    "lenet fc1 takes {fc1_in} inputs, not 16 maps of (h/4)x(w/4)"
                )));
            }
            // 16 * (h/4) * (w/4) = fc1_in with h = 4: any split of the product fits.
            InputShape {
                channels: dim(conv1, 1, "conv1.weight")?,
                height: 4,
                width: 4 * (fc1_in / 16),
            }
        }
        BackboneKind::ResNet { .. }
        | BackboneKind::Experts { .. }
        | BackboneKind::Bilateral { .. } => InputShape {
            channels: dim(backbone_shape(&shapes, ".stem.weight")?, 1, "stem.weight")?,
            height: 32,
            width: 32,
        },
        // The stem `conv1` is the shortest path ending in `.conv1.weight` (blocks have one too).
        BackboneKind::ImageNet(_) => InputShape {
            channels: dim(backbone_shape(&shapes, ".conv1.weight")?, 1, "conv1.weight")?,
            height: 32,
            width: 32,
        },
    };
    Ok(Geometry {
        input,
        classes,
        has_scales: shapes.iter().any(|(n, _)| n == "head.scales"),
        has_disalign: shapes.iter().any(|(n, _)| n == "head.logit_scale"),
        has_bias: shapes.iter().any(|(n, _)| n == "head.bias"),
    })
}

/// The recipe's classifier on `device` with the checkpoint's weights loaded strictly (every
/// parameter present, none left over, every shape equal).
pub fn rebuild(
    run: &ResolvedRun,
    checkpoint: &Checkpoint,
    device: &Device,
) -> Result<Classifier, ExportError> {
    // A run stored before the ResNets were renamed rebuilds as the option-B net it trained.
    let kind = run
        .backbone_kind()
        .ok_or_else(|| ExportError::UnknownBackbone(run.model.backbone.clone()))?;
    let head = match run.model.head.as_str() {
        "linear" => HeadKind::Linear,
        "cosine" => HeadKind::Cosine {
            scale: run.model.head_scale,
        },
        other => return Err(ExportError::UnknownHead(other.to_string())),
    };
    let g = geometry_of(kind, &checkpoint.model)?;
    let mut model = Classifier::new(kind, head, g.input, g.classes, device)?
        .with_contrast(run.model.contrast, device)?;
    // The head's optional parts follow the stage the checkpoint was taken in: LWS adds scales,
    // DisAlign its calibration;
    // a linear head keeps its bias. Whether they fit the recipe is checked by the strict load.
    if g.has_scales {
        model.head = model.head.with_lws_scales(device);
    }
    if g.has_disalign {
        model.head = model.head.with_disalign(device)?;
    }
    if !g.has_bias {
        model.head.bias = None;
    }
    let err = |e: burn::store::RecordError| ExportError::Record(e.to_string());
    let record =
        ModuleRecord::from_bytes(Bytes::from_bytes_vec(checkpoint.model.clone())).map_err(err)?;
    model.try_load_record(record).map_err(err)
}
