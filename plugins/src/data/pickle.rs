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

use std::collections::HashMap;
use std::rc::Rc;

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

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    op: usize,
    stack: Vec<Rc<Value>>,
    marks: Vec<usize>,
    memo: HashMap<u32, Rc<Value>>,
    work: usize,
}

/// Runs the pickle in `bytes` (one object, up to STOP) and returns it.
pub fn load(bytes: &[u8]) -> Result<Value, PickleError> {
    let mut m = Machine {
        bytes,
        pos: 0,
        op: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        work: 0,
    };
    m.run()?;
    let top = m.pop()?;
    Ok(Rc::try_unwrap(top).unwrap_or_else(|rc| (*rc).clone()))
}

impl Machine<'_> {
    fn err(&self, message: impl Into<String>) -> PickleError {
        PickleError {
            offset: self.op,
            message: message.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            return Err(self.err(format!(
                "truncated: {n} bytes announced, {left} left in the file"
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> Result<u64, PickleError> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn len(&mut self, n: usize) -> Result<usize, PickleError> {
        let v = self.le(n)?;
        usize::try_from(v).map_err(|_| self.err(format!("length {v} does not fit")))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .take(256)
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("a GLOBAL name longer than 256 bytes or unterminated"))?;
        let s = String::from_utf8(rest[..end].to_vec())
            .map_err(|_| self.err("a GLOBAL name that is not UTF-8"))?;
        self.pos += end + 1;
        Ok(s)
    }

    fn utf8(&mut self, n: usize) -> Result<Value, PickleError> {
        let b = self.take(n)?.to_vec();
        String::from_utf8(b)
            .map(Value::Str)
            .map_err(|_| self.err("a unicode string that is not UTF-8"))
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Rc::new(v));
    }

    fn pop(&mut self) -> Result<Rc<Value>, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    /// The items above the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Rc<Value>>, PickleError> {
        let mark = self.marks.pop().ok_or_else(|| self.err("no MARK"))?;
        Ok(self.stack.split_off(mark))
    }

    fn depth_of(&self, items: &[Rc<Value>]) -> Result<u8, PickleError> {
        let d = items.iter().map(|v| v.depth()).max().unwrap_or(0) + 1;
        if d > MAX_DEPTH {
            return Err(self.err(format!("containers nest deeper than {MAX_DEPTH}")));
        }
        Ok(d)
    }

    /// The top of the stack, unshared (copy-on-write, counted against [`MAX_WORK`]).
    fn top_mut(&mut self) -> Result<&mut Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        let last = self.stack.len() - 1;
        if Rc::strong_count(&self.stack[last]) > 1 {
            self.work += match self.stack[last].as_ref() {
                Value::List(v, _) | Value::Tuple(v, _) => v.len(),
                Value::Dict(v, _) => v.len(),
                _ => 1,
            };
            if self.work > MAX_WORK {
                return Err(self.err("too much copying of memoized containers"));
            }
        }
        Ok(Rc::make_mut(&mut self.stack[last]))
    }

    fn append(&mut self, items: Vec<Rc<Value>>) -> Result<(), PickleError> {
        let d = self.depth_of(&items)?;
        let offset = self.op;
        match self.top_mut()? {
            Value::List(v, depth) => {
                v.extend(items);
                *depth = (*depth).max(d);
                Ok(())
            }
            _ => Err(PickleError {
                offset,
                message: "APPEND(S) to something that is not a list".into(),
            }),
        }
    }

    fn set_items(&mut self, items: Vec<Rc<Value>>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("SETITEMS with an odd number of items"));
        }
        let d = self.depth_of(&items)?;
        let offset = self.op;
        match self.top_mut()? {
            Value::Dict(v, depth) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(val)) = (it.next(), it.next()) {
                    v.push((k, val));
                }
                *depth = (*depth).max(d);
                Ok(())
            }
            _ => Err(PickleError {
                offset,
                message: "SETITEM(S) on something that is not a dict".into(),
            }),
        }
    }

    fn tuple(&mut self, items: Vec<Rc<Value>>) -> Result<(), PickleError> {
        let d = self.depth_of(&items)?;
        self.push(Value::Tuple(items, d));
        Ok(())
    }

    fn run(&mut self) -> Result<(), PickleError> {
        loop {
            self.op = self.pos;
            let code = self.u8()?;
            match code {
                0x80 => {
                    let proto = self.u8()?;
                    if !(2..=5).contains(&proto) {
                        return Err(self.err(format!("protocol {proto}; allowed: 2 to 5")));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only
                }
                b'.' => return Ok(()),
                b'(' => self.marks.push(self.stack.len()),
                b'}' => self.push(Value::Dict(Vec::new(), 1)),
                b']' => self.push(Value::List(Vec::new(), 1)),
                b')' => self.push(Value::Tuple(Vec::new(), 1)),
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'K' => {
                    let v = self.le(1)?;
                    self.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.le(2)?;
                    self.push(Value::Int(v as i64));
                }
                b'J' => {
                    let v = self.le(4)? as u32 as i32;
                    self.push(Value::Int(i64::from(v)));
                }
                0x8a => {
                    // LONG1: a little-endian two's-complement integer of up to 8 bytes.
                    let n = self.len(1)?;
                    if n > 8 {
                        return Err(self.err(format!("a {n}-byte integer; allowed up to 8")));
                    }
                    let b = self.take(n)?;
                    let mut v = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        -1i64
                    } else {
                        0
                    };
                    for &x in b.iter().rev() {
                        v = (v << 8) | i64::from(x);
                    }
                    self.push(Value::Int(v));
                }
                b'U' | b'C' => {
                    let n = self.len(1)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b'T' | b'B' => {
                    let n = self.len(4)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                0x8e | 0x96 => {
                    let n = self.len(8)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                0x8c => {
                    let n = self.len(1)?;
                    let v = self.utf8(n)?;
                    self.stack.push(Rc::new(v));
                }
                b'X' => {
                    let n = self.len(4)?;
                    let v = self.utf8(n)?;
                    self.stack.push(Rc::new(v));
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(format!("{module}.{name}")));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_ref(), name.as_ref()) {
                        (Value::Str(m), Value::Str(n)) => {
                            let g = format!("{m}.{n}");
                            self.push(Value::Global(g));
                        }
                        _ => return Err(self.err("STACK_GLOBAL of non-strings")),
                    }
                }
                b'q' | b'r' | 0x94 => {
                    let id = match code {
                        b'q' => self.le(1)? as u32,
                        b'r' => self.le(4)? as u32,
                        _ => self.memo.len() as u32,
                    };
                    let top = self
                        .stack
                        .last()
                        .cloned()
                        .ok_or_else(|| self.err("memo store on an empty stack"))?;
                    self.memo.insert(id, top);
                }
                b'h' | b'j' => {
                    let id = if code == b'h' {
                        self.le(1)? as u32
                    } else {
                        self.le(4)? as u32
                    };
                    let v = self
                        .memo
                        .get(&id)
                        .cloned()
                        .ok_or_else(|| self.err(format!("memo {id} was never stored")))?;
                    if v.is_container() {
                        return Err(self.err(format!(
                            "memo {id} is a container; back-references to containers are not supported"
                        )));
                    }
                    self.stack.push(v);
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.tuple(items)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(code - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.tuple(items)?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(&callable, &args)?;
                    self.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    self.build(&state)?;
                }
                other => {
                    return Err(self.err(format!(
                        "opcode 0x{other:02x} is not one this reader supports (plain data: \
                         dicts, lists, tuples, ints, strings, bytes, numpy arrays)"
                    )));
                }
            }
        }
    }

    fn reduce(&self, callable: &Value, args: &Value) -> Result<Value, PickleError> {
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
    fn build(&mut self, state: &Rc<Value>) -> Result<(), PickleError> {
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

#[cfg(test)]
#[path = "pickle_tests.rs"]
mod tests;
