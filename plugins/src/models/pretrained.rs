//! Pretrained weights in (`model.pretrained`): a PyTorch `state_dict` loaded into a fresh
//! classifier's backbone, from safetensors (`safetensors.torch.save_file(model.state_dict(),
//! PATH)`, or a `cauda export` file) or from a `torch.save` file (`.pth`, `.pt`: torchvision's
//! downloads), which Burn's `pytorch-reader` parses without Python and without running the
//! pickle. Names are matched by the same rule the export writes them with (`torch_names.rs`),
//! with or without the `backbone.` prefix; every backbone tensor must be in the file with its
//! exact shape, and anything else in the file is an error naming the keys, except the classifier
//! (`fc.*`, torchvision's; `head.*`, an export's), which is left out because the run's head is new
//! (its class count is the data set's), and `num_batches_tracked`, which only matters to PyTorch
//! with `momentum=None`. A tensor's bytes are decoded only once its name and shape fit.
//!
//! The file's SHA-256 is part of the run's identity (`model.pretrained_sha256`, pinned at
//! submission); a file that changed since is refused here.

use crate::hex::ToHex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};
use sha2::{Digest, Sha256};

use super::weights_file::{FileTensor, file_tensors};
use super::{Classifier, ModulePath};

/// The prefix a classifier's (and an export's) backbone tensors carry.
const BACKBONE: &str = "backbone.";

/// Why pretrained weights could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PretrainedError {
    #[error("model.pretrained {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "model.pretrained {}: not readable as a torch.save file ({message}); if PyTorch loads \
         it, convert it once: python -c \"import torch, safetensors.torch as s; d = \
         torch.load('{0}', map_location='cpu', weights_only=True); s.save_file({{k: \
         v.contiguous() for k, v in d.items()}}, '{0}.safetensors')\"", path.display()
    )]
    Torch { path: PathBuf, message: String },
    #[error("model.pretrained {}: neither safetensors nor a torch.save file: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error(
        "model.pretrained {}: the file's SHA-256 is {actual}, but model.pretrained_sha256 is \
         {pinned}: the file changed since the run was submitted (or the pin is wrong)",
        path.display()
    )]
    Changed {
        path: PathBuf,
        actual: String,
        pinned: String,
    },
    #[error("model.pretrained {}: tensor `{name}` has dtype {dtype}; allowed: F32, F64, F16, BF16", path.display())]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error("model.pretrained {}: `{name}` is in the file both with and without `backbone.`", path.display())]
    Duplicate { path: PathBuf, name: String },
    /// The file does not hold the backbone's tensors: each list names every offending key.
    #[error("model.pretrained {}: does not fit the `{backbone}` backbone:{}", path.display(), mismatch_text(missing, unexpected, shapes))]
    Mismatch {
        path: PathBuf,
        backbone: String,
        /// Backbone tensors the file lacks (PyTorch names, without `backbone.`).
        missing: Vec<String>,
        /// File tensors the backbone has no place for.
        unexpected: Vec<String>,
        /// `(name, file shape, backbone shape)` of tensors of another shape.
        shapes: Vec<(String, Vec<usize>, Vec<usize>)>,
    },
}

/// Lists at most this many names per kind in the message (the error holds them all).
const SHOWN: usize = 12;

fn mismatch_text(
    missing: &[String],
    unexpected: &[String],
    shapes: &[(String, Vec<usize>, Vec<usize>)],
) -> String {
    fn list(out: &mut String, what: &str, items: Vec<String>) {
        if items.is_empty() {
            return;
        }
        let more = items.len().saturating_sub(SHOWN);
        let shown: Vec<String> = items.into_iter().take(SHOWN).collect();
        out.push_str(&format!(" {what}: {}", shown.join(", ")));
        if more > 0 {
            out.push_str(&format!(" (and {more} more)"));
        }
        out.push(';');
    }
    let mut out = String::new();
    list(
        &mut out,
        "missing",
        missing.iter().map(|n| format!("`{n}`")).collect(),
    );
    list(
        &mut out,
        "unexpected",
        unexpected.iter().map(|n| format!("`{n}`")).collect(),
    );
    list(
        &mut out,
        "wrong shape",
        shapes
            .iter()
            .map(|(n, file, model)| format!("`{n}` is {file:?} in the file, {model:?} here"))
            .collect(),
    );
    out.pop();
    out
}

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PretrainedReport {
    /// The file's SHA-256 (64 lowercase hex digits).
    pub sha256: String,
    /// Backbone tensors loaded.
    pub loaded: usize,
    /// File keys left out on purpose: the old classifier (`fc.*`, `head.*`) and
    /// `num_batches_tracked`.
    pub ignored: Vec<String>,
}

/// The SHA-256 of a pretrained-weights file, and its bytes.
pub fn read_pretrained(path: &Path) -> Result<(Vec<u8>, String), PretrainedError> {
    let bytes = std::fs::read(path).map_err(|source| PretrainedError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let sha = Sha256::digest(&bytes).to_hex();
    Ok((bytes, sha))
}

/// Loads `path` into `model`'s backbone (the head is left as it is); `backbone` is its spec name,
/// for errors. `pinned` is the run's `model.pretrained_sha256`, checked when given.
pub fn load_pretrained(
    model: Classifier,
    backbone: &str,
    path: &Path,
    pinned: Option<&str>,
) -> Result<(Classifier, PretrainedReport), PretrainedError> {
    let (bytes, sha256) = read_pretrained(path)?;
    if let Some(pinned) = pinned
        && pinned != sha256
    {
        return Err(PretrainedError::Changed {
            path: path.to_path_buf(),
            actual: sha256,
            pinned: pinned.to_string(),
        });
    }
    let (mut tensors, ignored) = backbone_tensors(path, &bytes)?;
    let mut mapper = Loader {
        at: ModulePath::default(),
        file: &mut tensors,
        bytes: &bytes,
        path,
        failed: None,
        missing: Vec::new(),
        shapes: Vec::new(),
        tracked: BTreeSet::new(),
        loaded: 0,
    };
    let Classifier {
        backbone: net,
        head,
        contrast,
    } = model;
    let net = net.map(&mut mapper);
    let Loader {
        missing,
        shapes,
        tracked,
        loaded,
        failed,
        ..
    } = mapper;
    if let Some(e) = failed {
        return Err(e);
    }
    let mut ignored = ignored;
    let unexpected: Vec<String> = tensors
        .into_keys()
        .filter(|name| {
            let tracked = tracked.contains(name);
            if tracked {
                ignored.push(name.clone());
            }
            !tracked
        })
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() || !shapes.is_empty() {
        return Err(PretrainedError::Mismatch {
            path: path.to_path_buf(),
            backbone: backbone.to_string(),
            missing,
            unexpected,
            shapes,
        });
    }
    ignored.sort();
    let report = PretrainedReport {
        sha256,
        loaded,
        ignored,
    };
    Ok((
        Classifier {
            backbone: net,
            head,
            contrast,
        },
        report,
    ))
}

/// The file's backbone tensors by name (the `backbone.` prefix removed), and the classifier
/// keys it leaves out. `num_batches_tracked` buffers are kept (with any dtype) to be matched
/// against the backbone's BatchNorms.
fn backbone_tensors(
    path: &Path,
    file: &[u8],
) -> Result<(BTreeMap<String, FileTensor>, Vec<String>), PretrainedError> {
    let mut out = BTreeMap::new();
    let mut ignored = Vec::new();
    for tensor in file_tensors(path, file)? {
        let key = tensor.key.clone();
        let name = key.strip_prefix(BACKBONE).unwrap_or(&key).to_string();
        if name.starts_with("fc.") || key.starts_with("head.") {
            ignored.push(key);
            continue;
        }
        if tensor.dtype.is_none() && !name.ends_with(".num_batches_tracked") {
            return Err(PretrainedError::Dtype {
                path: path.to_path_buf(),
                name: key,
                dtype: tensor.dtype_name,
            });
        }
        if out.insert(name.clone(), tensor).is_some() {
            return Err(PretrainedError::Duplicate {
                path: path.to_path_buf(),
                name,
            });
        }
    }
    Ok((out, ignored))
}

/// Replaces each backbone parameter by the file's tensor of the same PyTorch name.
struct Loader<'a> {
    at: ModulePath,
    file: &'a mut BTreeMap<String, FileTensor>,
    /// The bytes the file's tensors were read from, and its path.
    bytes: &'a [u8],
    path: &'a Path,
    /// The first tensor that could not be decoded.
    failed: Option<PretrainedError>,
    missing: Vec<String>,
    shapes: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// `num_batches_tracked` keys of the backbone's BatchNorms.
    tracked: BTreeSet<String>,
    loaded: usize,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.at.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.at.exit(container_type);
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(torch) = self.at.torch_name() else {
            return param;
        };
        if let Some(tracked) = torch.batches_tracked() {
            self.tracked.insert(tracked);
        }
        let model_shape = param.lazy_shape().to_vec();
        let Some(file) = self.file.remove(&torch.name) else {
            self.missing.push(torch.name);
            return param;
        };
        let want: Vec<usize> = if torch.transposed {
            model_shape.iter().rev().copied().collect()
        } else {
            model_shape.clone()
        };
        if file.shape != want {
            self.shapes.push((torch.name, file.shape, want));
            return param;
        }
        let values = match file.values(self.bytes, self.path) {
            Ok(v) if torch.transposed => transposed(&v, want[0], want[1]),
            Ok(v) => v,
            Err(e) => {
                self.failed.get_or_insert(e);
                return param;
            }
        };
        let data = TensorData::new(values, model_shape);
        let device = param.lazy_device();
        let tensor = Tensor::<D>::from_data(data, &device);
        self.loaded += 1;
        let id = param.id;
        param.transform_for_load(tensor, id)
    }
}

/// A row-major `[rows, cols]` matrix's transpose (PyTorch's `[out, in]` to Burn's `[in, out]`).
fn transposed(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = values[i * cols + j];
        }
    }
    out
}

#[cfg(test)]
#[path = "pretrained_tests.rs"]
mod tests;
