//! The experiment spec's sections as serde types, with the documented defaults. Everything is
//! `deny_unknown_fields`: a misspelt key is an error, never silently ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::evaluation_section::EvaluationSection;
pub use crate::data::longtail::LtProfile;
pub use crate::data::{DataFormat, Normalization, SyntheticConfig};
use crate::models::ContrastDesign;
use crate::registry::PluginRef;

fn default_method() -> String {
    "ce".into()
}

/// A whole experiment: one run, or a grid of runs when `[sweep]` is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    pub name: String,
    /// A method preset (built-in or user-defined); the sections below override its parts.
    #[serde(default = "default_method")]
    pub method: String,
    pub data: DataSection,
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub rebalance: RebalanceSection,
    #[serde(default)]
    pub augment: AugmentSection,
    #[serde(default)]
    pub module: ModuleSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    /// What the run does after its final evaluation (SADE's test-time aggregation).
    #[serde(default, skip_serializing_if = "EvaluationSection::is_default")]
    pub evaluation: EvaluationSection,
    #[serde(default)]
    pub resources: ResourcesSection,
    /// How the daemon reports the experiment (not part of any run).
    #[serde(default, skip_serializing_if = "ReportSection::is_default")]
    pub report: ReportSection,
    /// Cartesian grid: `method` or dotted keys (`"train.seed"`) to lists of values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sweep: BTreeMap<String, Vec<toml::Value>>,
}

/// The long-tailed profile of the training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImbalanceSpec {
    pub profile: LtProfile,
    /// `n_max / n_min`, >= 1 (1 = balanced).
    pub ratio: f64,
    /// For `step`: the fraction of classes that are minority classes (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_fraction: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    pub format: DataFormat,
    /// Folder of the data set's files (not used by `digits` and `synthetic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imbalance: Option<ImbalanceSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_class: Option<usize>,
    /// Validation images per class, held out of the images the split did not select where
    /// the class has enough of them (docs/SPEC.md).
    #[serde(default)]
    pub val_per_class: usize,
    #[serde(default)]
    pub split_seed: u64,
    /// A split file (JSON, `data/split_file.rs`) whose per-class selection replaces the
    /// long-tailed profile (`imbalance`, `max_per_class`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_file: Option<PathBuf>,
    /// SHA-256 of the split file's bytes: filled in at submission (or given to pin a file), so
    /// the run's identity is the file's content; a different file is refused when the run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_file_sha256: Option<String>,
    /// Per-channel normalization: `fit` (the training split's own, the default), `cifar10`,
    /// `cifar100` or `{ mean = [...], std = [...] }`.
    #[serde(default, skip_serializing_if = "Normalization::is_fit")]
    pub normalize: Normalization,
    /// Train on the balanced variant of the long-tailed set (same size, equal per class).
    #[serde(default)]
    pub balanced_variant: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<SyntheticConfig>,
    /// `list` / `inat`: the training split file (ImageNet_LT_train.txt, or iNaturalist's
    /// train2018.json), under `path` when relative. Its profile is the run's: nothing is
    /// re-sampled, and its labels give the class counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_list: Option<PathBuf>,
    /// `list` / `inat`: the validation split file (model selection), optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_list: Option<PathBuf>,
    /// `list` / `inat`: the test split file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_list: Option<PathBuf>,
    /// `list` / `inat`: the side of the square images held in memory (default 224): each image
    /// is resized so its shorter side is `image_size / 0.875` and center-cropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
    /// SHA-256 over the split lists' bytes (train, val, test): filled in at submission (or given
    /// to pin them), so the run's identity is the lists' content; changed lists are refused when
    /// the run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lists_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// `mlp`, `lenet`, `resnet8`, `resnet20`, `resnet32` (option A, Kaiming-normal: the field's
    /// CIFAR ResNets), `resnet8b`, `resnet20b`, `resnet32b` (option-B shortcuts), `resnet10`,
    /// `resnet18`, `resnet50`, `resnext50_32x4d` (torchvision's ImageNet networks).
    pub backbone: String,
    /// `linear` or `cosine`.
    pub head: String,
    /// Scale `s` of a cosine head.
    pub head_scale: f32,
    /// Experts over a shared trunk (RIDE's and SADE's `ResNet_s`: the CIFAR ResNets' last two
    /// stages and the head, once per expert, 24 and 48 maps wide); 1 is a plain model. Set by
    /// the `experts` classifier plugin. Left out of the canonical JSON when 1, so the config
    /// hashes of single-expert runs stay what they were.
    #[serde(skip_serializing_if = "is_one")]
    pub experts: usize,
    /// The heads of contrastive representation learning (a projection head on the features,
    /// class centers from the classifier's weights) and how many augmented views each image
    /// gets in training; set by the `contrastive` classifier plugin (BCL). Left out of the
    /// canonical JSON when absent, so the config hashes of other runs stay what they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contrast: Option<ContrastDesign>,
    /// BBN's two branches: the CIFAR ResNet's last block once for the main stream and once for
    /// the second sampler stream, one linear classifier over both branches' features; set by
    /// the `bilateral` classifier plugin. Left out of the canonical JSON when false, so the
    /// config hashes of other runs stay what they were.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bilateral: bool,
    /// A PyTorch `state_dict` (safetensors, or a `torch.save` `.pth`/`.pt`) whose tensors
    /// initialize the backbone (torchvision's names; `models/pretrained.rs`). The head is new.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PathBuf>,
    /// SHA-256 of the pretrained file: filled in at submission (or given to pin a file), so the
    /// run's identity is the weights' content; a different file is refused when the run starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretrained_sha256: Option<String>,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            backbone: "lenet".into(),
            head: "linear".into(),
            head_scale: 16.0,
            experts: 1,
            contrast: None,
            bilateral: false,
            pretrained: None,
            pretrained_sha256: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerSpec {
    /// `sgd` or `adam`.
    pub name: String,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        Self {
            name: "sgd".into(),
            lr: 0.05,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 5e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSpec {
    /// `constant`, `step` or `cosine`.
    pub name: String,
    /// Linear warm-up from lr/warmup_epochs to lr over the first epochs (LDAM-DRW uses 5).
    pub warmup_epochs: usize,
    /// For `step`: epochs at which the lr is multiplied by `gamma`.
    pub milestones: Vec<usize>,
    pub gamma: f64,
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        Self {
            name: "cosine".into(),
            warmup_epochs: 0,
            milestones: Vec::new(),
            gamma: 0.1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerSpec,
    pub schedule: ScheduleSpec,
    pub seed: u64,
    /// Evaluate on the test (and validation) split every k epochs, and always after the last.
    pub eval_every: usize,
    /// Write a checkpoint every k epochs (0 = only at the end).
    pub checkpoint_every: usize,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 128,
            optimizer: OptimizerSpec::default(),
            schedule: ScheduleSpec::default(),
            seed: 0,
            eval_every: 1,
            checkpoint_every: 1,
        }
    }
}

/// Class re-balancing: overrides of the preset's sampler, loss, DRW schedule and post-hoc step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebalanceSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler: Option<PluginRef>,
    /// A second sampler stream: each batch gets a batch of the same size drawn by this sampler
    /// (BBN's re-balancing branch: `reversed`); only for a loss or mixer that takes it
    /// ([`crate::registry::Needs::second_stream`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_sampler: Option<PluginRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<PluginRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drw: Option<PluginRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posthoc: Option<PluginRef>,
}

/// Information augmentation: standard crop+flip and a batch-level mixing method.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentSection {
    /// Random crop with padding + horizontal flip (default: on, off for digits and synthetic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_flip: Option<bool>,
    /// Crop padding in pixels (default 4, as for CIFAR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad: Option<usize>,
    /// `mixup`, `cutmix` or `remix`, with parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<PluginRef>,
    /// torchvision's `ColorJitter(s, s, s, 0)` after the random resized crop of split-file data
    /// sets (the ImageNet-LT recipes use 0.4); in `(0, 1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color_jitter: Option<f32>,
}

/// Module improvement: the classifier kind and a decoupled second stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSection {
    /// `cosine` (normalized classifier) with its `scale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<PluginRef>,
    /// `crt`, `lws`, `tau-norm` or `weight-balancing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage2: Option<PluginRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Classes with more than this many training images are "many-shot".
    pub many_threshold: usize,
    /// Classes with fewer than this many training images are "few-shot".
    pub few_threshold: usize,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            many_threshold: 100,
            few_threshold: 20,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourcesSection {
    pub gpus: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_share: Option<f64>,
    /// Estimated GPU memory in MiB (a GPU run's reservation when packing shares); without it
    /// the daemon reserves the measured peak of an earlier run of the same config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_mem_mb: Option<u64>,
    pub priority: i32,
    /// The training backend (`flex`, `tch`, `vulkan`); absent means the daemon's default where
    /// the run is placed (docs/GPU.md). Not part of the config hash (`resources` is not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<crate::train::Backend>,
}

impl ResourcesSection {
    /// Whether the run is placed on a GPU (whole GPUs or a share of one) rather than a CPU slot.
    pub fn wants_gpu(&self) -> bool {
        self.gpus > 0 || self.gpu_share.is_some()
    }

    /// Checks the ranges (share, memory, GPU count), naming the key; `origin` names the spec.
    pub fn check(&self, origin: &str) -> super::Result<()> {
        let bad = |key: &str, msg: String| Err(super::invalid(origin, key, msg));
        if let Some(share) = self.gpu_share
            && !(share > 0.0 && share <= 1.0)
        {
            return bad(
                "resources.gpu_share",
                format!("{share} is out of range; allowed 0 < share <= 1"),
            );
        }
        if let Some(mb) = self.gpu_mem_mb {
            if !(1..=MAX_GPU_MEM_MB).contains(&mb) {
                return bad(
                    "resources.gpu_mem_mb",
                    format!("{mb} is out of range; allowed 1 ..= {MAX_GPU_MEM_MB} (MiB)"),
                );
            }
            if self.gpus == 0 && self.gpu_share.is_none() {
                return bad(
                    "resources.gpu_mem_mb",
                    "applies to GPU runs only; set resources.gpu_share (a packed share of one \
                     GPU) or resources.gpus too"
                        .into(),
                );
            }
        }
        if self.gpus > 64 {
            return bad(
                "resources.gpus",
                format!("{} is out of range; allowed 0 ..= 64", self.gpus),
            );
        }
        Ok(())
    }
}

/// The largest `resources.gpu_mem_mb` a spec may declare (1 TiB, in MiB).
pub const MAX_GPU_MEM_MB: u64 = 1 << 20;

/// `[report]`: what the daemon adds to an experiment to report it as the survey does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSection {
    /// Schedule the balanced reference runs of every run (plain CE and the method itself on the
    /// balanced variant of its training set) and report relative accuracy
    /// `A_r = A_t / max(A_v, A_b)` (Zhang et al., "Deep Long-Tailed Learning: A Survey", Sec. 4.1).
    pub relative_accuracy: bool,
}

impl ReportSection {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

fn is_one(n: &usize) -> bool {
    *n == 1
}
