//! Measured peak GPU memory: a worker on a GPU reports its peak in the first epoch of its
//! attempt; the daemon keeps it on the run record (durable, in sled) and remembers the largest
//! peak per config hash, so a later submission of the same config that declares no
//! `gpu_mem_mb` reserves the measured peak plus a margin, and `cauda show` says so.

use std::collections::HashMap;

use super::{CoreError, Daemon, Result};
use crate::model::{ResourceRequest, RunId};
use crate::store::{LogStream, RunFilter, WriteOp};
use cauda_plugins::spec::MAX_GPU_MEM_MB;

/// The margin added to a measured peak: a fifth of it, at least this many MiB.
pub const PEAK_MARGIN_MIN_MB: u64 = 256;

/// The reservation for a measured peak: the peak plus 20% (at least 256 MiB), rounded up.
pub fn with_margin(peak_mb: u64) -> u64 {
    peak_mb.saturating_add((peak_mb.div_ceil(5)).max(PEAK_MARGIN_MIN_MB))
}

/// The largest measured peak of one config, and the run that measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownPeak {
    pub mb: u64,
    pub run: RunId,
}

impl Daemon {
    /// Records the peak GPU memory an attempt's worker measured: on the run (the largest over
    /// its attempts), as a daemon log line, and in the per-config index. Fenced like every
    /// worker call; a peak above [`MAX_GPU_MEM_MB`] is a bad report and stores nothing.
    pub fn record_peak(&self, id: RunId, attempt: u32, peak_mb: u64) -> Result<()> {
        if peak_mb > MAX_GPU_MEM_MB {
            return Err(CoreError::BadReport {
                run: id,
                reason: format!(
                    "peak GPU memory {peak_mb} MiB is out of range; allowed 0 ..= {MAX_GPU_MEM_MB}"
                ),
            });
        }
        let _guard = self.lock()?;
        let mut run = self.fence(id, attempt)?;
        self.saw(id, attempt);
        let line = format!("attempt {attempt}: peak GPU memory {peak_mb} MiB in its first epoch");
        if run.gpu_memory.peak_mb.is_none_or(|old| peak_mb > old) {
            run.gpu_memory.peak_mb = Some(peak_mb);
        }
        let hash = run.config_hash.clone();
        self.commit(&[WriteOp::PutRun(run)])?;
        self.append_logs(&[(id, LogStream::Daemon, line)])?;
        if let Ok(mut peaks) = self.peaks.lock()
            && let Some(index) = peaks.as_mut()
        {
            remember(
                index,
                hash,
                KnownPeak {
                    mb: peak_mb,
                    run: id,
                },
            );
        }
        Ok(())
    }

    /// The largest peak measured for `config_hash`, from the index (built from the store on
    /// first use).
    pub(super) fn known_peak(&self, config_hash: &str) -> Result<Option<KnownPeak>> {
        let mut peaks = self
            .peaks
            .lock()
            .map_err(|_| CoreError::Internal("the peak index lock was poisoned".into()))?;
        if peaks.is_none() {
            let mut index = HashMap::new();
            for run in self.store.list_runs(&RunFilter::default())? {
                if let Some(mb) = run.gpu_memory.peak_mb {
                    remember(&mut index, run.config_hash, KnownPeak { mb, run: run.id });
                }
            }
            *peaks = Some(index);
        }
        Ok(peaks.as_ref().and_then(|i| i.get(config_hash).copied()))
    }

    /// A new run's request and where its memory comes from: declared in the spec, else (a GPU
    /// run) the measured peak of the same config plus the margin, else none.
    pub(super) fn reservation(
        &self,
        mut request: ResourceRequest,
        config_hash: &str,
    ) -> Result<(ResourceRequest, Option<String>)> {
        if request.gpu_mem_mb.is_some() {
            return Ok((request, Some("declared in the spec".into())));
        }
        if request.gpus == 0 && request.gpu_share.is_none() {
            return Ok((request, None));
        }
        let Some(peak) = self.known_peak(config_hash)? else {
            return Ok((request, None));
        };
        let mb = with_margin(peak.mb);
        request.gpu_mem_mb = Some(mb);
        Ok((
            request,
            Some(format!(
                "measured: peak {} MiB of {} (same config) + margin = {mb} MiB",
                peak.mb, peak.run
            )),
        ))
    }
}

/// Keeps the larger peak of a config.
fn remember(index: &mut HashMap<String, KnownPeak>, hash: String, peak: KnownPeak) {
    let slot = index.entry(hash).or_insert(peak);
    if peak.mb > slot.mb {
        *slot = peak;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_a_fifth_and_at_least_256_mib() {
        assert_eq!(with_margin(1000), 1256);
        assert_eq!(with_margin(5000), 6000);
        assert_eq!(with_margin(5001), 6002);
        assert_eq!(with_margin(0), 256);
        assert_eq!(with_margin(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_index_keeps_the_largest_peak() {
        let mut index = HashMap::new();
        remember(
            &mut index,
            "h".into(),
            KnownPeak {
                mb: 10,
                run: RunId(1),
            },
        );
        remember(
            &mut index,
            "h".into(),
            KnownPeak {
                mb: 30,
                run: RunId(2),
            },
        );
        remember(
            &mut index,
            "h".into(),
            KnownPeak {
                mb: 20,
                run: RunId(3),
            },
        );
        assert_eq!(
            index["h"],
            KnownPeak {
                mb: 30,
                run: RunId(2)
            }
        );
    }
}
