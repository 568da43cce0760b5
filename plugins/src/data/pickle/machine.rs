//! The pickle machine: the stack, the marks and the memo, the byte readers, and the opcodes of
//! protocols 2-5 that plain data uses (`calls.rs` runs REDUCE and BUILD).

use std::collections::HashMap;
use std::rc::Rc;

use super::{MAX_DEPTH, MAX_WORK, PickleError, Value};

pub(super) struct Machine<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
    pub(super) op: usize,
    pub(super) stack: Vec<Rc<Value>>,
    pub(super) marks: Vec<usize>,
    pub(super) memo: HashMap<u32, Rc<Value>>,
    pub(super) work: usize,
}

impl Machine<'_> {
    pub(super) fn err(&self, message: impl Into<String>) -> PickleError {
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

    pub(super) fn pop(&mut self) -> Result<Rc<Value>, PickleError> {
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
    pub(super) fn top_mut(&mut self) -> Result<&mut Value, PickleError> {
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

    pub(super) fn run(&mut self) -> Result<(), PickleError> {
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
}
