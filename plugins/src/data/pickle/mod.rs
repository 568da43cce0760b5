//! A small, bounded reader for the Python pickles torchvision's CIFAR folders hold: a dict of
//! byte-string keys to lists, strings and one numpy `uint8` array.
//!
//! Why not `serde-pickle`: a numpy array pickles as a call, `numpy.core.multiarray._reconstruct`
//! (a GLOBAL, then REDUCE and BUILD with the raw bytes in the state tuple), and serde-pickle
//! resolves only a fixed set of globals: any other is an error, or with
//! `replace_unresolved_globals` the whole call becomes `None`, dropping the pixels. So this
//! reader runs the pickle machine for the opcodes of protocols 2-5 that plain data uses and
//! knows exactly four callables: `_reconstruct` and `_frombuffer` (the array; `numpy.core` or
//! numpy 2's `numpy._core`), `numpy.dtype`, and `_codecs.encode(str, "latin1")` (how Python 3
//! writes `bytes` at protocol 2). Anything else is an error naming the byte offset.
//!
//! Bounds: the input is a slice already read under a size limit; every length is checked
//! against the bytes left before anything is allocated; containers nest at most
//! [`MAX_DEPTH`] deep; a back-reference (BINGET) may only fetch a scalar, a string or a global,
//! never a container, so no value is shared or copied at scale; the work of copy-on-write after
//! a memo store is capped at [`MAX_WORK`] element copies.

use std::rc::Rc;

mod calls;
mod machine;

/// Deepest container nesting accepted (CIFAR's pickles nest 3 deep).
pub const MAX_DEPTH: u8 = 16;
/// Most element copies the reader makes for copy-on-write.
pub const MAX_WORK: usize = 1 << 24;

/// A pickled value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Bytes(Vec<u8>),
    Str(String),
    /// `module.name` of a GLOBAL.
    Global(String),
    List(Vec<Rc<Value>>, u8),
    Tuple(Vec<Rc<Value>>, u8),
    Dict(Vec<(Rc<Value>, Rc<Value>)>, u8),
    /// A numpy dtype by its type string (`u1`, `<i8`).
    Dtype(String),
    /// A numpy array: its shape, dtype and raw C-order bytes (empty until BUILD for
    /// `_reconstruct`).
    Array {
        shape: Vec<usize>,
        dtype: String,
        data: Rc<Value>,
    },
}

/// Why a pickle cannot be read: the byte offset of the opcode and what went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("at byte {offset}: {message}")]
pub struct PickleError {
    pub offset: usize,
    pub message: String,
}

impl Value {
    fn depth(&self) -> u8 {
        match self {
            Value::List(_, d) | Value::Tuple(_, d) | Value::Dict(_, d) => *d,
            Value::Array { .. } => 1,
            _ => 0,
        }
    }

    fn is_container(&self) -> bool {
        matches!(
            self,
            Value::List(..) | Value::Tuple(..) | Value::Dict(..) | Value::Array { .. }
        )
    }

    /// A key or string as bytes (`bytes`, or a `str` by its UTF-8).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Str(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The value under `key` (as bytes or str) of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items, _) => items
                .iter()
                .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
                .map(|(_, v)| v.as_ref()),
            _ => None,
        }
    }
}

/// Runs the pickle in `bytes` (one object, up to STOP) and returns it.
pub fn load(bytes: &[u8]) -> Result<Value, PickleError> {
    let mut m = machine::Machine {
        bytes,
        pos: 0,
        op: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: std::collections::HashMap::new(),
        work: 0,
    };
    m.run()?;
    let top = m.pop()?;
    Ok(Rc::try_unwrap(top).unwrap_or_else(|rc| (*rc).clone()))
}

#[cfg(test)]
mod tests;
