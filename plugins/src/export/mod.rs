//! Export a trained run's weights for other frameworks: the checkpoint's model record is loaded
//! into the `Classifier` its recipe describes (so a record that does not fit the recipe is an
//! error, not a silent half-export), then written as PyTorch-loadable safetensors whose names
//! and layouts match `bench/reference.py`'s modules, or passed through as Burn's own record
//! bytes. The name map is documented in `docs/EXPORT.md`.

mod check;
mod pytorch;
mod rebuild;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use check::{CheckCase, case_from_images, check_case};
pub use pytorch::{PtTensor, pytorch_tensors, safetensors_bytes, trainable_names};
pub use rebuild::{geometry_of, rebuild};

use crate::models::ModelError;
use crate::spec::ResolvedRun;
use crate::train::{Checkpoint, CheckpointError, config_hash};

/// Which file format an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// safetensors with PyTorch names and layouts (`safetensors.torch.load_file`).
    Safetensors,
    /// Burn's own record bytes (burnpack), as the checkpoint holds them.
    Burn,
}

/// Why a run's weights could not be exported. Every variant means the stored checkpoint cannot
/// be turned into the recipe's model; none is transient.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("checkpoint belongs to another config (hash {found}, the run's is {expected})")]
    ForeignCheckpoint { found: String, expected: String },
    #[error("model.backbone `{0}` is not a known backbone")]
    UnknownBackbone(String),
    #[error("model.head `{0}` is not a known head (linear, cosine)")]
    UnknownHead(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The record cannot be read, or does not fit the recipe's model (a tensor missing, extra
    /// or of the wrong shape).
    #[error("model record: {0}")]
    Record(String),
    #[error("tensor `{name}` has dtype {dtype}, which safetensors export does not support")]
    Dtype { name: String, dtype: String },
    #[error("safetensors: {0}")]
    Safetensors(String),
}

/// What the caller knows besides the run and its checkpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportOptions {
    /// Tau-normalize the head with this tau before writing safetensors (a tau-norm run's
    /// checkpoint holds the stage-1 classifier; its summary holds the chosen tau).
    pub tau: Option<f32>,
}

/// Exports `checkpoint` (the bytes of a cauda checkpoint) of `run` in `format`.
pub fn export(
    run: &ResolvedRun,
    checkpoint: &[u8],
    format: ExportFormat,
    options: &ExportOptions,
) -> Result<Vec<u8>, ExportError> {
    let ck = Checkpoint::from_bytes(checkpoint)?;
    let expected = config_hash(run);
    if ck.header.config_hash != expected {
        return Err(ExportError::ForeignCheckpoint {
            found: ck.header.config_hash,
            expected,
        });
    }
    let device = crate::train::host_device();
    let mut model = rebuild(run, &ck, &device)?;
    match format {
        ExportFormat::Burn => Ok(ck.model),
        ExportFormat::Safetensors => {
            if let Some(tau) = options.tau {
                model.head = model.head.tau_normalized(tau);
            }
            let mut meta = BTreeMap::new();
            meta.insert("format".into(), "pt".into());
            meta.insert("cauda.run".into(), run.name.clone());
            meta.insert("cauda.method".into(), run.method.clone());
            // The canonical name: `resnet32b` for a run stored before the rename.
            let backbone = run
                .backbone_kind()
                .map_or(run.model.backbone.as_str(), |k| k.name());
            meta.insert("cauda.backbone".into(), backbone.to_string());
            meta.insert("cauda.head".into(), run.model.head.clone());
            meta.insert("cauda.head_scale".into(), run.model.head_scale.to_string());
            meta.insert("cauda.stage".into(), ck.header.stage.to_string());
            meta.insert(
                "cauda.epochs_done".into(),
                ck.header.epochs_done.to_string(),
            );
            meta.insert("cauda.config_hash".into(), expected);
            if let Some(tau) = options.tau {
                meta.insert("cauda.tau".into(), tau.to_string());
            }
            safetensors_bytes(&model, meta)
        }
    }
}
