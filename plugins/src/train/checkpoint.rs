//! Checkpoints as bytes: model weights (Burn's record format), optimizer state, the stage and
//! epoch reached, the metric history and the selection state. The sampler and augmentation RNGs
//! are derived from (seed, stage, epoch), so a run resumed at epoch e sees the batches it would
//! have seen: that pair is the whole RNG state.
//!
//! Layout: `CAUDACK1`, u32 LE length + JSON header, u64 LE length + model record bytes,
//! u64 LE length + optimizer record bytes (0 when there is no optimizer state), and, only in a
//! distillation stage, u64 LE length + the frozen teacher's record bytes: a resumed attempt gets
//! its own latest checkpoint, not its stage-1 dependency's, so the teacher travels with it.
//! A checkpoint without a teacher is byte for byte what it was before teachers existed.

use serde::{Deserialize, Serialize};

use super::record::EpochRecord;

const MAGIC: &[u8; 8] = b"CAUDACK1";
/// Refuse headers larger than this (a corrupt length must not allocate gigabytes).
const MAX_HEADER: usize = 64 << 20;

/// Why checkpoint bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint: at byte {offset}: {message}")]
    Malformed { offset: usize, message: String },
}

/// Everything needed to continue a run where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// Hash of the resolved run this checkpoint belongs to.
    pub config_hash: String,
    /// 1 = main training, 2 = decoupled stage 2.
    pub stage: u8,
    /// Epochs of this stage already finished.
    pub epochs_done: usize,
    /// Every epoch record so far (both stages), so a resumed run reports a full history.
    pub history: Vec<EpochRecord>,
}

/// A checkpoint in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub header: CheckpointHeader,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
    /// The teacher's model record in a distillation stage (`module.stage2 = "kd"`).
    pub teacher: Option<Vec<u8>>,
}

impl Checkpoint {
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).unwrap_or_default();
        let teacher = self.teacher.as_deref();
        let mut out = Vec::with_capacity(
            8 + 4
                + header.len()
                + 24
                + self.model.len()
                + self.optimizer.len()
                + teacher.map_or(0, <[u8]>::len),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.model.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.model);
        out.extend_from_slice(&(self.optimizer.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.optimizer);
        if let Some(t) = teacher {
            out.extend_from_slice(&(t.len() as u64).to_le_bytes());
            out.extend_from_slice(t);
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err(CheckpointError::Malformed {
                offset: 0,
                message: "not a cauda checkpoint (bad magic)".into(),
            });
        }
        let hlen = u32::from_le_bytes(r.array()?) as usize;
        if hlen > MAX_HEADER {
            return Err(r.err(format!("header length {hlen} exceeds {MAX_HEADER}")));
        }
        let at = r.pos;
        let header =
            serde_json::from_slice(r.take(hlen)?).map_err(|e| CheckpointError::Malformed {
                offset: at,
                message: format!("header: {e}"),
            })?;
        let model = r.blob()?.to_vec();
        let optimizer = r.blob()?.to_vec();
        let teacher = if r.pos < bytes.len() {
            Some(r.blob()?.to_vec())
        } else {
            None
        };
        if r.pos != bytes.len() {
            return Err(r.err(format!("{} trailing bytes", bytes.len() - r.pos)));
        }
        Ok(Self {
            header,
            model,
            optimizer,
            teacher,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, message: String) -> CheckpointError {
        CheckpointError::Malformed {
            offset: self.pos,
            message,
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CheckpointError> {
        if self.bytes.len() - self.pos < n {
            return Err(self.err(format!(
                "truncated: need {n} bytes, {} left",
                self.bytes.len() - self.pos
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CheckpointError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn blob(&mut self) -> Result<&'a [u8], CheckpointError> {
        let n = u64::from_le_bytes(self.array()?);
        let n = usize::try_from(n).map_err(|_| self.err(format!("length {n} too large")))?;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            header: CheckpointHeader {
                config_hash: "abc".into(),
                stage: 1,
                epochs_done: 3,
                history: vec![],
            },
            model: vec![1, 2, 3],
            optimizer: vec![9; 10],
            teacher: None,
        }
    }

    #[test]
    fn round_trips() {
        let c = sample();
        assert_eq!(Checkpoint::from_bytes(&c.to_bytes()).unwrap(), c);
        let with_teacher = Checkpoint {
            teacher: Some(vec![7; 5]),
            ..sample()
        };
        let bytes = with_teacher.to_bytes();
        assert_eq!(bytes.len(), c.to_bytes().len() + 8 + 5);
        assert_eq!(Checkpoint::from_bytes(&bytes).unwrap(), with_teacher);
        // A teacher blob cut short is an error, not a checkpoint without a teacher.
        let err = Checkpoint::from_bytes(&bytes[..bytes.len() - 1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn truncation_and_garbage_are_reported_with_offsets() {
        let bytes = sample().to_bytes();
        for cut in [0, 5, 12, bytes.len() - 1] {
            let err = Checkpoint::from_bytes(&bytes[..cut])
                .unwrap_err()
                .to_string();
            assert!(err.contains("at byte"), "{err}");
        }
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(
            Checkpoint::from_bytes(&bad)
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
        let mut huge = bytes;
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            Checkpoint::from_bytes(&huge)
                .unwrap_err()
                .to_string()
                .contains("exceeds")
        );
    }
}
