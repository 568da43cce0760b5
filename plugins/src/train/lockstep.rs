//! The lockstep record: what a run did in its first steps, exactly, so that `bench/lockstep.py`
//! can replay the same steps in PyTorch and compare every number. Statistical comparisons over
//! seeds cannot find a per-step bug fast enough; replaying the same batches from the same
//! weights can, to float32 precision.
//!
//! Layout of the folder (`caudad train SPEC --out RUN --lockstep DIR [--lockstep-steps K]`):
//!
//! - `lockstep.json`: the run's config hash, class counts, and one entry per recorded stage
//!   (which stage-2 method, the names of the trainable parameters) and step (stage, epoch,
//!   step within the stage, learning rate, loss, batch size);
//! - `stage<S>_init.safetensors`: every tensor of the model when stage S starts (PyTorch names,
//!   as `cauda export` writes them: `backbone.conv1.weight`, BatchNorm running statistics, ...);
//! - `stage2_teacher.safetensors`: the frozen teacher of a distillation stage 2 (`kd`), whose
//!   logits the replay recomputes for every step;
//! - `stage<S>_step<K>.safetensors`: the batch of step K exactly as the model saw it (`x`: the
//!   normalized pixels after sampling, crop/flip and mixing; `labels`; `labels_b` and `lam` when
//!   the batch was mixed), where each image came from (`index`: its training-set index; `crop`:
//!   `[dx, dy, flip]` per image when crop+flip is on), the loss cauda computed (`loss`), and every
//!   model tensor after the optimizer step under `after.<name>`; with a second sampler stream
//!   (BBN) its batch too, as `x2`, `labels2`, `index2` and `crop2`;
//! - `eval.safetensors`: the final model (`model.<name>`), the first test images (`x`), and the
//!   logits cauda's evaluation gives them (`logits`, after tau-normalization and post-hoc
//!   adjustment when the run has them; the chosen tau is in `lockstep.json`).
//!
//! Only the first K steps of each stage are recorded (consecutive from the stage's start, so the
//! optimizer state needs no recording); K = 0 records every step. With `draws` every later step is
//! recorded too, but only what was drawn for it (`index`, `crop`, labels, mixing targets, loss; no
//! pixels, no weights): a few KB per step, so a whole run's draws fit beside its summary, and
//! `bench/replay_draws.py` rebuilds its batches from the data set (checked against the first K
//! steps' pixels) to swap one source of randomness at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde::Serialize;

use super::TrainError;
use super::batches::Batch;
use crate::export::pytorch_tensors;
use crate::models::Classifier;

/// Where to write the record and how many steps of each stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockstepConfig {
    pub dir: PathBuf,
    /// Steps recorded per stage from its start; 0 = all.
    pub steps: usize,
    /// Also record the draws (no pixels, no weights) of every step after the first `steps`.
    pub draws: bool,
}

/// One recorded step, as `lockstep.json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct StepEntry {
    pub stage: u8,
    /// 0-based epoch within the stage (what the loss' DRW switch and the schedule see).
    pub epoch: usize,
    /// 0-based step within the stage.
    pub step: usize,
    pub lr: f64,
    pub loss: f32,
    pub batch: usize,
    pub mixed: bool,
    /// Whether the step's file has the pixels and weights (`false`: only its draws).
    pub full: bool,
}

/// One recorded stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageEntry {
    pub stage: u8,
    pub epochs: usize,
    /// PyTorch names of the parameters this stage trains.
    pub trainable: Vec<String>,
}

/// `lockstep.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LockstepIndex {
    pub config_hash: String,
    /// The device the run trained on, as Burn names it (`Device<Flex(Cpu)>`), which
    /// `bench/lockstep.py` reports beside its figures.
    pub device: String,
    pub class_counts: Vec<usize>,
    pub stages: Vec<StageEntry>,
    pub steps: Vec<StepEntry>,
    /// The tau a tau-normalized run evaluated with.
    pub tau: Option<f32>,
    /// Images in `eval.safetensors`.
    pub eval_images: usize,
}

/// Collects the record while a run trains.
#[derive(Debug)]
pub struct Recorder {
    cfg: LockstepConfig,
    index: LockstepIndex,
    /// Steps recorded in the current stage.
    in_stage: usize,
}

fn io(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Sink(format!("lockstep record {}: {e}", path.display()))
}

impl Recorder {
    pub fn new(
        cfg: &LockstepConfig,
        config_hash: &str,
        class_counts: &[usize],
        device: &burn::tensor::Device,
    ) -> Result<Self, TrainError> {
        std::fs::create_dir_all(&cfg.dir).map_err(|e| io(&cfg.dir, e))?;
        Ok(Self {
            cfg: cfg.clone(),
            index: LockstepIndex {
                config_hash: config_hash.to_string(),
                device: format!("{device:?}"),
                class_counts: class_counts.to_vec(),
                ..LockstepIndex::default()
            },
            in_stage: 0,
        })
    }

    /// Whether the next step of the current stage is recorded.
    pub fn wants_step(&self) -> bool {
        self.cfg.draws || self.full_step()
    }

    /// Whether the next step gets a full record (pixels and weights), not only its draws.
    fn full_step(&self) -> bool {
        self.cfg.steps == 0 || self.in_stage < self.cfg.steps
    }

    /// A stage starts from `model`; `trainable` names what it trains (PyTorch names).
    pub fn stage_start(
        &mut self,
        stage: u8,
        epochs: usize,
        model: &Classifier,
        trainable: Vec<String>,
    ) -> Result<(), TrainError> {
        self.in_stage = 0;
        self.index.stages.push(StageEntry {
            stage,
            epochs,
            trainable,
        });
        let tensors = model_tensors(&model.valid(), "")?;
        self.write(&format!("stage{stage}_init.safetensors"), tensors)
    }

    /// The frozen teacher a distillation stage 2 distils from (`stage2_teacher.safetensors`).
    pub fn teacher(&mut self, model: &Classifier) -> Result<(), TrainError> {
        let tensors = model_tensors(&model.valid(), "")?;
        self.write("stage2_teacher.safetensors", tensors)
    }

    /// One optimizer step: the batch the model saw, the loss, the model after the step.
    pub fn step(
        &mut self,
        entry: StepEntry,
        batch: &Batch,
        shape: [usize; 4],
        after: &Classifier,
    ) -> Result<(), TrainError> {
        // `valid()` first: BatchNorm's running statistics (burn's `RunningState`) are updated
        // per thread and only merged into the value a visitor reads when synced.
        let mut entry = entry;
        entry.full = self.full_step();
        let mut t = if !entry.full {
            Vec::new()
        } else {
            let mut t = model_tensors(&after.valid(), "after.")?;
            t.push(f32_tensor("x", shape.to_vec(), &batch.pixels));
            t
        };
        t.push(i64_tensor("labels", &batch.labels));
        push_draws(&mut t, &batch.draws, "");
        if let Some(second) = &batch.second {
            if entry.full {
                let mut shape2 = shape;
                shape2[0] = second.labels.len();
                t.push(f32_tensor("x2", shape2.to_vec(), &second.pixels));
            }
            t.push(i64_tensor("labels2", &second.labels));
            push_draws(&mut t, &second.draws, "2");
        }
        if let Some((b, lam)) = &batch.mixed {
            t.push(i64_tensor("labels_b", b));
            t.push(f32_tensor("lam", vec![lam.len()], lam));
        }
        t.push(f32_tensor("loss", vec![1], &[entry.loss]));
        let name = format!("stage{}_step{}.safetensors", entry.stage, entry.step);
        self.in_stage += 1;
        self.index.steps.push(entry);
        self.write(&name, t)
    }

    /// The final model, test inputs and the logits cauda's evaluation gives them.
    pub fn eval(
        &mut self,
        model: &Classifier,
        x: &[f32],
        shape: [usize; 4],
        logits: &[f32],
        tau: Option<f32>,
    ) -> Result<(), TrainError> {
        let mut t = model_tensors(model, "model.")?;
        t.push(f32_tensor("x", shape.to_vec(), x));
        let classes = logits.len() / shape[0].max(1);
        t.push(f32_tensor("logits", vec![shape[0], classes], logits));
        self.index.tau = tau;
        self.index.eval_images = shape[0];
        self.write("eval.safetensors", t)
    }

    /// Writes `lockstep.json`.
    pub fn finish(&self) -> Result<(), TrainError> {
        let path = self.cfg.dir.join("lockstep.json");
        let text = serde_json::to_vec_pretty(&self.index).map_err(|e| io(&path, e))?;
        std::fs::write(&path, text).map_err(|e| io(&path, e))
    }

    fn write(&self, name: &str, tensors: Vec<Named>) -> Result<(), TrainError> {
        let path = self.cfg.dir.join(name);
        let views = tensors
            .iter()
            .map(|t| {
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                    .map(|v| (t.name.as_str(), v))
                    .map_err(|e| io(&path, format!("{}: {e}", t.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bytes = safetensors::tensor::serialize(views, None::<HashMap<String, String>>)
            .map_err(|e| io(&path, e))?;
        std::fs::write(&path, bytes).map_err(|e| io(&path, e))
    }
}

/// `index{suffix}` and, with crop+flip, `crop{suffix}` of a batch's draws.
fn push_draws(t: &mut Vec<Named>, draws: &[super::batches::Draw], suffix: &str) {
    let index: Vec<i64> = draws.iter().map(|d| d.index as i64).collect();
    t.push(i64_named(
        &format!("index{suffix}"),
        vec![index.len()],
        &index,
    ));
    let crops: Option<Vec<i64>> = draws
        .iter()
        .map(|d| {
            d.crop
                .map(|(dx, dy, f)| [dx as i64, dy as i64, i64::from(f)])
        })
        .collect::<Option<Vec<_>>>()
        .map(|c| c.concat());
    if let Some(c) = crops.filter(|c| !c.is_empty()) {
        t.push(i64_named(
            &format!("crop{suffix}"),
            vec![c.len() / 3, 3],
            &c,
        ));
    }
}

/// One named tensor for the record.
struct Named {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn model_tensors(model: &Classifier, prefix: &str) -> Result<Vec<Named>, TrainError> {
    let tensors = pytorch_tensors(model).map_err(|e| TrainError::Record(e.to_string()))?;
    Ok(tensors
        .into_iter()
        .map(|t| Named {
            name: format!("{prefix}{}", t.name),
            dtype: t.dtype,
            shape: t.shape,
            bytes: t.bytes,
        })
        .collect())
}

fn f32_tensor(name: &str, shape: Vec<usize>, v: &[f32]) -> Named {
    Named {
        name: name.into(),
        dtype: Dtype::F32,
        shape,
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn i64_tensor(name: &str, v: &[u32]) -> Named {
    let v: Vec<i64> = v.iter().map(|&x| i64::from(x)).collect();
    i64_named(name, vec![v.len()], &v)
}

fn i64_named(name: &str, shape: Vec<usize>, v: &[i64]) -> Named {
    Named {
        name: name.into(),
        dtype: Dtype::I64,
        shape,
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// PyTorch names of the parameters `model` trains (those that require a gradient).
pub fn trainable_names(model: &Classifier) -> Result<Vec<String>, TrainError> {
    crate::export::trainable_names(model).map_err(|e| TrainError::Record(e.to_string()))
}
