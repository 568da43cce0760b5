//! The frozen teacher of a distillation stage (`module.stage2 = "kd"`, [`crate::stage2::Distil`]):
//! the stage-1 model in evaluation mode (BatchNorm normalizes with its running statistics, no
//! parameter takes a gradient), whose logits every training step of the student hands to the
//! loss as [`crate::losses::Step::teacher`]. Its record is written into every checkpoint of the
//! stage, so an attempt resumed in stage 2 distils from the same teacher.

use std::sync::Arc;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Tensor};

use super::TrainError;
use crate::models::Classifier;

/// A frozen teacher and its record bytes.
#[derive(Debug, Clone)]
pub struct Teacher {
    model: Classifier,
    record: Arc<Vec<u8>>,
}

fn record_err(e: burn::store::RecordError) -> TrainError {
    TrainError::Record(format!("teacher: {e}"))
}

impl Teacher {
    /// The teacher from the final stage-1 model.
    pub fn new(model: Classifier) -> Result<Self, TrainError> {
        let record = model
            .valid()
            .into_record()
            .into_bytes()
            .map_err(record_err)?
            .to_vec();
        Ok(Self {
            model: model.freeze(),
            record: Arc::new(record),
        })
    }

    /// The teacher of a stage-2 checkpoint, loaded into `shell` (a model of the run's
    /// architecture).
    pub fn from_record(shell: Classifier, record: &[u8]) -> Result<Self, TrainError> {
        let rec =
            ModuleRecord::from_bytes(Bytes::from_bytes_vec(record.to_vec())).map_err(record_err)?;
        let model = shell.try_load_record(rec).map_err(record_err)?;
        Ok(Self {
            model: model.freeze(),
            record: Arc::new(record.to_vec()),
        })
    }

    /// The bytes a checkpoint keeps.
    pub fn record(&self) -> &[u8] {
        &self.record
    }

    /// The model, for the lockstep record.
    pub fn model(&self) -> &Classifier {
        &self.model
    }

    /// The teacher's logits of normalized images `[N, C, H, W]`, without a gradient.
    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.model.forward(x).detach()
    }

    /// The teacher on another device (a data-parallel replica's).
    pub fn on(&self, device: &Device) -> Self {
        Self {
            model: self.model.clone().fork(device),
            record: Arc::clone(&self.record),
        }
    }
}
