//! Exporting a run's weights: the chosen stored checkpoint read back from the store, its model
//! rebuilt from the run's resolved config by the engine (`cauda_plugins::export`), and written
//! in the asked format. A tau-norm run's final checkpoint holds the stage-1 classifier; its
//! safetensors export is tau-normalized with the tau the run chose (from its summary), so it
//! gives the logits the run was evaluated with.

use cauda_plugins::export::{self, ExportFormat, ExportOptions};

use super::{CheckpointChoice, CoreError, Daemon};
use crate::model::{RunId, RunRecord};
use crate::run_config::RunConfig;
use crate::store::{CheckpointMeta, sha256_hex};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Unknown run, no matching checkpoint, or a store failure.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The stored checkpoint does not give the model the run's config describes.
    #[error("run {run}: cannot rebuild the model from its checkpoint: {reason}")]
    Rebuild { run: RunId, reason: String },
}

/// A run's weights in one format, ready to stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub run: RunId,
    /// Epoch of the checkpoint they come from.
    pub epoch: u32,
    pub format: ExportFormat,
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, 64 lowercase hex digits.
    pub sha256: String,
    /// The tau the classifier was normalized with (tau-norm runs, safetensors only).
    pub tau: Option<f32>,
}

/// The tau a finished tau-norm run chose, when `meta` is its final checkpoint.
fn chosen_tau(run: &RunRecord, meta: &CheckpointMeta) -> Option<f32> {
    let summary = run.summary.as_ref()?;
    if u64::from(meta.epoch) != summary.epochs as u64 {
        return None;
    }
    summary.tau_sweep.as_ref().map(|t| t.chosen)
}

impl Daemon {
    /// The weights of run `id`'s chosen checkpoint in `format`.
    pub fn export_run(
        &self,
        id: RunId,
        choice: CheckpointChoice,
        format: ExportFormat,
    ) -> Result<Exported, ExportError> {
        let run = self.get_run(id)?;
        let meta = self.checkpoint_meta(id, choice)?;
        let mut checkpoint = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
        for index in 0..meta.chunks {
            checkpoint.extend(self.checkpoint_chunk(&meta, index)?);
        }
        let rebuild = |reason: String| ExportError::Rebuild { run: id, reason };
        if !meta.sha256.is_empty() && sha256_hex(&checkpoint) != meta.sha256 {
            return Err(rebuild(format!(
                "the stored checkpoint of epoch {} does not match its SHA-256",
                meta.epoch
            )));
        }
        let resolved =
            match RunConfig::from_json(&format!("run {id}"), &run.config_json).map_err(rebuild)? {
                RunConfig::Engine(r) => r,
                RunConfig::Command(_) => {
                    return Err(rebuild(
                        "a command run's checkpoint is its program's own directory: fetch it with \
                     `cauda checkpoint` (export converts cauda engine checkpoints only)"
                            .into(),
                    ));
                }
            };
        let tau = match format {
            ExportFormat::Safetensors => chosen_tau(&run, &meta),
            ExportFormat::Burn => None,
        };
        let bytes = export::export(&resolved, &checkpoint, format, &ExportOptions { tau })
            .map_err(|e| rebuild(e.to_string()))?;
        tracing::info!(run_id = %id, epoch = meta.epoch, ?format, bytes = bytes.len(), "exported");
        Ok(Exported {
            run: id,
            epoch: meta.epoch,
            format,
            sha256: sha256_hex(&bytes),
            bytes,
            tau,
        })
    }
}
