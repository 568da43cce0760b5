//! The only callables a CIFAR pickle may run (REDUCE) and the states it may set (BUILD): numpy
//! arrays (`_reconstruct` + BUILD, or `_frombuffer`), `numpy.dtype`, and Python 3's protocol-2
//! spelling of `bytes`, `_codecs.encode(str, "latin1")`. Anything else is an error.

use std::rc::Rc;

use super::machine::Machine;
use super::{PickleError, Value};

impl Machine<'_> {
    pub(super) fn reduce(&self, callable: &Value, args: &Value) -> Result<Value, PickleError> {
        let Value::Global(name) = callable else {
            return Err(self.err("REDUCE of something that is not a GLOBAL"));
        };
        let Value::Tuple(args, _) = args else {
            return Err(self.err(format!("REDUCE of {name} without an argument tuple")));
        };
        let arg = |i: usize| args.get(i).map(Rc::as_ref);
        match name.as_str() {
            "_codecs.encode" => match (arg(0), arg(1)) {
                (Some(Value::Str(s)), Some(Value::Str(enc))) if enc == "latin1" => s
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).ok())
                    .collect::<Option<Vec<u8>>>()
                    .map(Value::Bytes)
                    .ok_or_else(|| self.err("_codecs.encode: a character above U+00FF")),
                _ => Err(self.err("_codecs.encode: expected (str, \"latin1\")")),
            },
            "numpy.dtype" => match arg(0).and_then(Value::as_bytes) {
                Some(t) => Ok(Value::Dtype(String::from_utf8_lossy(t).into_owned())),
                None => Err(self.err("numpy.dtype: expected a type string")),
            },
            "numpy.core.multiarray._reconstruct" | "numpy._core.multiarray._reconstruct" => {
                Ok(Value::Array {
                    shape: Vec::new(),
                    dtype: String::new(),
                    data: Rc::new(Value::Bytes(Vec::new())),
                })
            }
            "numpy.core.numeric._frombuffer" | "numpy._core.numeric._frombuffer" => {
                match (arg(0), arg(1), arg(2)) {
                    (Some(Value::Bytes(_)), Some(Value::Dtype(d)), Some(Value::Tuple(s, _))) => {
                        Ok(Value::Array {
                            shape: self.shape(s)?,
                            dtype: d.clone(),
                            data: args[0].clone(),
                        })
                    }
                    _ => Err(self.err("_frombuffer: expected (bytes, dtype, shape, order)")),
                }
            }
            other => Err(self.err(format!(
                "calls `{other}`; allowed: numpy arrays, numpy.dtype, _codecs.encode"
            ))),
        }
    }

    fn shape(&self, dims: &[Rc<Value>]) -> Result<Vec<usize>, PickleError> {
        dims.iter()
            .map(|d| match d.as_ref() {
                Value::Int(n) if *n >= 0 => Ok(*n as usize),
                _ => Err(self.err("an array shape that is not non-negative integers")),
            })
            .collect()
    }

    /// BUILD: an array's state `(version, shape, dtype, fortran, data)`; a dtype's state is
    /// accepted and ignored (byte order and flags of a one-byte type do not matter).
    pub(super) fn build(&mut self, state: &Rc<Value>) -> Result<(), PickleError> {
        let Value::Tuple(items, _) = state.as_ref() else {
            return Err(self.err("BUILD with a state that is not a tuple"));
        };
        let offset = self.op;
        let fail = |message: &str| PickleError {
            offset,
            message: message.into(),
        };
        let array = match (items.get(1), items.get(2), items.get(3), items.get(4)) {
            (Some(s), Some(d), Some(fortran), Some(data)) => {
                match (s.as_ref(), d.as_ref(), fortran.as_ref()) {
                    (Value::Tuple(dims, _), Value::Dtype(dtype), Value::Bool(false)) => {
                        Some((self.shape(dims)?, dtype.clone(), data.clone()))
                    }
                    (_, _, Value::Bool(true)) => {
                        return Err(fail("Fortran-order arrays are not supported"));
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match (self.top_mut()?, array) {
            (Value::Dtype(_), _) => Ok(()),
            (Value::Array { shape, dtype, data }, Some((s, d, bytes))) => {
                if bytes.as_bytes().is_none() {
                    return Err(fail("array data that is not bytes"));
                }
                *shape = s;
                *dtype = d;
                *data = bytes;
                Ok(())
            }
            _ => Err(fail(
                "BUILD of something that is not a numpy array or dtype",
            )),
        }
    }
}
