//! The tensors of a pretrained-weights file (`model.pretrained`), whatever wrote it: safetensors
//! (read into memory and sliced), or a `torch.save` file (`.pth`, `.pt`; ZIP, legacy or TAR
//! container), which Burn's `pytorch-reader` parses without Python and without executing the
//! pickle: it rebuilds only tensors and refuses anything else. A tensor's bytes are decoded only
//! when asked, so one whose name or shape does not fit is never materialized.

use std::path::Path;

use burn::tensor::{DType, TensorData};
use safetensors::{Dtype, SafeTensors};

use super::PretrainedError;

/// One tensor of the file.
pub(super) struct FileTensor {
    /// Its key in the file.
    pub key: String,
    /// Its element type where it is a float type the loader converts; `None` otherwise.
    pub dtype: Option<DType>,
    /// The file's name of its element type, for errors.
    pub dtype_name: String,
    pub shape: Vec<usize>,
    bytes: Source,
}

/// Where a tensor's bytes are.
enum Source {
    /// A range of the safetensors file's bytes.
    Range(std::ops::Range<usize>),
    /// A handle that reads them from the `torch.save` file.
    Torch(pytorch_reader::Tensor),
}

impl FileTensor {
    /// The values as f32, row-major as in the file. `file` is the bytes the tensors were read
    /// from; `path` names the file in errors.
    pub fn values(self, file: &[u8], path: &Path) -> Result<Vec<f32>, PretrainedError> {
        let format = |message: String| PretrainedError::Format {
            path: path.to_path_buf(),
            message: format!("{}: {message}", self.key),
        };
        let dtype = self
            .dtype
            .ok_or_else(|| format(format!("dtype {}", self.dtype_name)))?;
        let bytes = match &self.bytes {
            Source::Range(r) => file
                .get(r.clone())
                .ok_or_else(|| format("out of the file".into()))?
                .to_vec(),
            Source::Torch(t) => t.read().map_err(|source| PretrainedError::Io {
                path: path.to_path_buf(),
                source,
            })?,
        };
        TensorData::from_bytes_vec(bytes, self.shape.clone(), dtype)
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| format(format!("{e:?}")))
    }
}

/// Every tensor of `file` (the bytes of `path`): safetensors, else a `torch.save` file.
pub(super) fn file_tensors(path: &Path, file: &[u8]) -> Result<Vec<FileTensor>, PretrainedError> {
    match SafeTensors::deserialize(file) {
        Ok(st) => Ok(safetensors_tensors(file, &st)),
        // torch.save writes a ZIP archive (PyTorch >= 1.6) or a pickle stream (0x80: protocol 2+).
        Err(_) if file.starts_with(b"PK\x03\x04") || file.first() == Some(&0x80) => {
            torch_tensors(path)
        }
        Err(e) => match path.extension().and_then(|e| e.to_str()) {
            Some("pth" | "pt" | "tar") => torch_tensors(path),
            _ => Err(PretrainedError::Format {
                path: path.to_path_buf(),
                message: format!("safetensors: {e}"),
            }),
        },
    }
}

fn safetensors_tensors(file: &[u8], st: &SafeTensors<'_>) -> Vec<FileTensor> {
    let base = file.as_ptr() as usize;
    st.tensors()
        .into_iter()
        .map(|(key, view)| {
            let dtype = match view.dtype() {
                Dtype::F32 => Some(DType::F32),
                Dtype::F64 => Some(DType::F64),
                Dtype::F16 => Some(DType::F16),
                Dtype::BF16 => Some(DType::BF16),
                _ => None,
            };
            // The view borrows `file`: its offset there.
            let data = view.data();
            let at = data.as_ptr() as usize - base;
            FileTensor {
                key,
                dtype,
                dtype_name: format!("{:?}", view.dtype()),
                shape: view.shape().to_vec(),
                bytes: Source::Range(at..at + data.len()),
            }
        })
        .collect()
}

fn torch_tensors(path: &Path) -> Result<Vec<FileTensor>, PretrainedError> {
    use pytorch_reader::DType as T;
    let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| PretrainedError::Torch {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(reader
        .into_tensors()
        .into_iter()
        .map(|(key, t)| {
            let dtype = match t.dtype() {
                T::F32 => Some(DType::F32),
                T::F64 => Some(DType::F64),
                T::F16 => Some(DType::F16),
                T::BF16 => Some(DType::BF16),
                _ => None,
            };
            FileTensor {
                key,
                dtype,
                dtype_name: format!("{:?}", t.dtype()),
                shape: t.shape().to_vec(),
                bytes: Source::Torch(t),
            }
        })
        .collect())
}
