//! A `Classifier` as safetensors with `bench/reference.py`'s state-dict names (torchvision's for
//! the ImageNet ResNets) and PyTorch's layouts. A visitor walks the model's parameters and names
//! each by `models::ModulePath::torch_name` (the one rule pretrained weights are read back
//! with): enum variants leave no trace, a `Linear` weight is transposed, BatchNorm's
//! `gamma`/`beta` are `weight`/`bias`, projection shortcuts are `nn.Sequential`s (`.0` conv, `.1`
//! BatchNorm). PyTorch's BatchNorm has a `num_batches_tracked` buffer, written as 0 (it only
//! matters with `momentum=None`, which reference.py does not use). Conv weights are `[out, in,
//! kh, kw]` in both. The map is documented in `docs/EXPORT.md`.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{DType, Tensor, TensorData};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

use super::ExportError;
use crate::models::{Classifier, ModulePath};

/// One tensor as PyTorch names and lays it out: little-endian bytes in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct PtTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Collects float parameters with their PyTorch names.
#[derive(Default)]
struct Walker {
    at: ModulePath,
    out: Vec<PtTensor>,
    /// Names of the parameters that require a gradient (what an optimizer step changes).
    trainable: Vec<String>,
    error: Option<ExportError>,
}

impl Walker {
    fn push(&mut self, data: TensorData, trainable: bool) -> Result<(), ExportError> {
        let Some(torch) = self.at.torch_name() else {
            return Err(ExportError::Record("a parameter without a name".into()));
        };
        let data = if torch.transposed && data.shape().len() == 2 {
            transpose(data)
        } else {
            data
        };
        let dtype = dtype_of(&torch.name, data.dtype())?;
        let shape = data.shape().to_vec();
        if let Some(tracked) = torch.batches_tracked() {
            self.out.push(PtTensor {
                name: tracked,
                dtype: Dtype::I64,
                shape: vec![],
                bytes: 0i64.to_le_bytes().to_vec(),
            });
        }
        if trainable {
            self.trainable.push(torch.name.clone());
        }
        self.out.push(PtTensor {
            name: torch.name,
            dtype,
            shape,
            bytes: data.as_bytes().to_vec(),
        });
        Ok(())
    }
}

impl ModuleVisitor for Walker {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.at.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.at.exit(container_type);
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.error.is_none()
            && let Err(e) = self.push(param.val().into_data(), param.is_require_grad())
        {
            self.error = Some(e);
        }
    }
}

/// `[rows, cols]` to `[cols, rows]`, element by element.
fn transpose(data: TensorData) -> TensorData {
    let (rows, cols) = (data.shape()[0], data.shape()[1]);
    let size = data.dtype().size();
    let bytes = data.as_bytes();
    let mut out = vec![0u8; bytes.len()];
    for i in 0..rows {
        for j in 0..cols {
            let (src, dst) = ((i * cols + j) * size, (j * rows + i) * size);
            out[dst..dst + size].copy_from_slice(&bytes[src..src + size]);
        }
    }
    TensorData::from_bytes_vec(out, [cols, rows], data.dtype())
}

fn dtype_of(name: &str, dtype: DType) -> Result<Dtype, ExportError> {
    Ok(match dtype {
        DType::F32 | DType::Flex32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        other => {
            return Err(ExportError::Dtype {
                name: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    })
}

/// Every tensor of `model` under its PyTorch name, sorted by name.
pub fn pytorch_tensors(model: &Classifier) -> Result<Vec<PtTensor>, ExportError> {
    let mut walker = Walker::default();
    model.visit(&mut walker);
    if let Some(e) = walker.error {
        return Err(e);
    }
    let mut out = walker.out;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = out.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(ExportError::Record(format!(
            "two tensors map to `{}`",
            w[0].name
        )));
    }
    Ok(out)
}

/// The PyTorch names of `model`'s parameters that require a gradient, sorted.
pub fn trainable_names(model: &Classifier) -> Result<Vec<String>, ExportError> {
    let mut walker = Walker::default();
    model.visit(&mut walker);
    if let Some(e) = walker.error {
        return Err(e);
    }
    let mut names = walker.trainable;
    names.sort();
    Ok(names)
}

/// The safetensors file of `model`, with `metadata` in its header.
pub fn safetensors_bytes(
    model: &Classifier,
    metadata: BTreeMap<String, String>,
) -> Result<Vec<u8>, ExportError> {
    let tensors = pytorch_tensors(model)?;
    let views = tensors
        .iter()
        .map(|t| {
            TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (t.name.as_str(), v))
                .map_err(|e| ExportError::Safetensors(format!("{}: {e}", t.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta: HashMap<String, String> = metadata.into_iter().collect();
    safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| ExportError::Safetensors(e.to_string()))
}
