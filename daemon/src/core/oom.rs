//! GPU out-of-memory: how a failure is recognised (the worker's flag, its error text, the
//! stderr tail of a process that died), and the pure decision of what happens next. A run on a
//! GPU share that dies of out-of-memory is requeued ONCE with a larger reservation instead of
//! failing (not counted against `max_retries`); a second out-of-memory fails it with the reason.
//!
//! # The larger reservation
//! The new `gpu_mem_mb` is the larger of twice the memory reserved for the attempt and 1.5x the
//! peak its worker measured, capped at the largest GPU's memory. Nothing to grow from (no
//! reservation and no measured peak), GPUs of unknown memory, or a reservation already at the
//! cap: the run is requeued on a whole GPU instead. A run that already had whole GPUs has
//! nothing larger to get and fails at once; a CPU run's "out of memory" is an ordinary failure.

use crate::model::ResourceRequest;

/// Phrases of GPU allocation failures: libtorch (`CUDA out of memory. Tried to allocate ...`,
/// `CUDA error: out of memory`), CUDA (`CUDA_ERROR_OUT_OF_MEMORY`), wgpu (`Out of Memory`,
/// `OutOfMemory`), cubecl (`out of memory`, `Not enough memory`). Compared in lower case.
const OOM_PHRASES: &[&str] = &[
    "out of memory",
    "out_of_memory",
    "outofmemory",
    "not enough memory",
];

/// Whether an error text or a stderr tail says the process ran out of (GPU) memory.
pub fn looks_like_oom(text: &str) -> bool {
    let lower = text.to_lowercase();
    OOM_PHRASES.iter().any(|p| lower.contains(p))
}

/// What the decision needs to know about the attempt that ran out of memory.
#[derive(Debug, Clone, PartialEq)]
pub struct OomInput<'a> {
    /// The run's request for the attempt that died.
    pub request: &'a ResourceRequest,
    /// The memory in MiB its grant reserved, when it reserved any.
    pub reserved_mb: Option<u64>,
    /// The peak its worker measured, when measured.
    pub peak_mb: Option<u64>,
    /// The memory of the largest GPU of the inventory, when any GPU's memory is known.
    pub largest_gpu_mb: Option<u64>,
    /// The run was already requeued once after an out-of-memory death.
    pub already_requeued: bool,
}

/// What to do with a run whose attempt died of out-of-memory.
#[derive(Debug, Clone, PartialEq)]
pub enum OomDecision {
    /// Not a GPU run: an ordinary failure (retried if `max_retries` allows).
    NotGpu,
    /// Requeue once with this request; `source` says where its memory came from, `reason` is
    /// the event's and the pending reason's text.
    Requeue {
        request: ResourceRequest,
        source: String,
        reason: String,
    },
    /// Fail the run now, with this reason.
    Fail { reason: String },
}

/// The decision (see the module doc for the rules).
pub fn decide(input: &OomInput<'_>) -> OomDecision {
    let req = input.request;
    if req.gpus == 0 && req.gpu_share.is_none() {
        return OomDecision::NotGpu;
    }
    let had = match input.reserved_mb.or(req.gpu_mem_mb) {
        Some(mb) => format!("{mb} MiB reserved"),
        None => "no memory reserved".to_string(),
    };
    if input.already_requeued {
        return OomDecision::Fail {
            reason: format!(
                "ran out of GPU memory again ({had}) after its one requeue with a larger reservation"
            ),
        };
    }
    if req.gpus > 0 {
        return OomDecision::Fail {
            reason: format!(
                "ran out of GPU memory on {} whole GPU(s); there is no larger reservation to give",
                req.gpus
            ),
        };
    }
    let whole = |why: &str| OomDecision::Requeue {
        request: ResourceRequest {
            gpus: 1,
            gpu_share: None,
            gpu_mem_mb: None,
        },
        source: format!("a whole GPU after running out of GPU memory ({had}; {why})"),
        reason: format!("ran out of GPU memory ({had}); requeued once on a whole GPU ({why})"),
    };
    let Some(cap) = input.largest_gpu_mb else {
        return whole("the GPUs' memory is unknown");
    };
    let reserved = input.reserved_mb.or(req.gpu_mem_mb);
    let doubled = reserved.map(|r| r.saturating_mul(2));
    let from_peak = input.peak_mb.map(|p| p.saturating_mul(3).div_ceil(2));
    let Some(grown) = doubled.max(from_peak) else {
        return whole("no reservation or measured peak to grow from");
    };
    let new = grown.min(cap);
    if reserved.is_some_and(|r| new <= r) {
        return whole("its reservation already was the largest GPU's memory");
    }
    let how = match (doubled, from_peak) {
        (Some(d), Some(p)) if p > d => format!(
            "1.5 x its measured peak of {} MiB",
            input.peak_mb.unwrap_or(0)
        ),
        (Some(_), _) => "twice its reservation".to_string(),
        (None, _) => format!(
            "1.5 x its measured peak of {} MiB",
            input.peak_mb.unwrap_or(0)
        ),
    };
    let capped = if new < grown {
        format!(", capped at the largest GPU's {cap} MiB")
    } else {
        String::new()
    };
    OomDecision::Requeue {
        request: ResourceRequest {
            gpu_mem_mb: Some(new),
            ..req.clone()
        },
        source: format!(
            "raised to {new} MiB ({how}{capped}) after running out of GPU memory ({had})"
        ),
        reason: format!(
            "ran out of GPU memory ({had}); requeued once with {new} MiB reserved ({how}{capped})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(s: f64, mem: Option<u64>) -> ResourceRequest {
        ResourceRequest {
            gpus: 0,
            gpu_share: Some(s),
            gpu_mem_mb: mem,
        }
    }

    fn input(req: &ResourceRequest) -> OomInput<'_> {
        OomInput {
            request: req,
            reserved_mb: req.gpu_mem_mb,
            peak_mb: None,
            largest_gpu_mb: Some(24_000),
            already_requeued: false,
        }
    }

    fn requeued(d: OomDecision) -> (ResourceRequest, String, String) {
        match d {
            OomDecision::Requeue {
                request,
                source,
                reason,
            } => (request, source, reason),
            other => panic!("expected a requeue, got {other:?}"),
        }
    }

    #[test]
    fn recognises_the_backends_messages_and_nothing_else() {
        for text in [
            "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total capacity)",
            "RuntimeError: CUDA error: out of memory",
            "CUDA_ERROR_OUT_OF_MEMORY",
            "wgpu error: Validation Error\n\nCaused by:\n    Out of Memory",
            "Err(OutOfMemory)",
            "cubecl: Not enough memory to allocate the buffer",
        ] {
            assert!(looks_like_oom(text), "{text}");
        }
        for text in [
            "data path /nonexistent does not exist",
            "worker of attempt 1 died: killed by signal 9",
            "",
        ] {
            assert!(!looks_like_oom(text), "{text}");
        }
    }

    #[test]
    fn a_share_is_requeued_with_twice_its_reservation() {
        let req = share(0.25, Some(4000));
        let (new, source, reason) = requeued(decide(&input(&req)));
        assert_eq!(new, share(0.25, Some(8000)));
        assert!(
            source.contains("raised to 8000 MiB (twice its reservation)"),
            "{source}"
        );
        assert!(
            reason.contains("4000 MiB reserved") && reason.contains("requeued once with 8000 MiB"),
            "{reason}"
        );
    }

    #[test]
    fn a_larger_measured_peak_wins_and_the_cap_is_the_largest_gpu() {
        let req = share(0.5, Some(4000));
        let with_peak = OomInput {
            peak_mb: Some(7000),
            ..input(&req)
        };
        let (new, source, _) = requeued(decide(&with_peak));
        assert_eq!(new.gpu_mem_mb, Some(10_500));
        assert!(
            source.contains("1.5 x its measured peak of 7000 MiB"),
            "{source}"
        );
        let big = share(0.5, Some(16_000));
        let (new, source, _) = requeued(decide(&input(&big)));
        assert_eq!(new.gpu_mem_mb, Some(24_000));
        assert!(
            source.contains("capped at the largest GPU's 24000 MiB"),
            "{source}"
        );
        // Only a peak: grow from it.
        let bare = share(0.5, None);
        let peak_only = OomInput {
            peak_mb: Some(3000),
            ..input(&bare)
        };
        assert_eq!(requeued(decide(&peak_only)).0.gpu_mem_mb, Some(4500));
    }

    #[test]
    fn nothing_to_grow_from_gives_a_whole_gpu() {
        let whole = ResourceRequest {
            gpus: 1,
            gpu_share: None,
            gpu_mem_mb: None,
        };
        let bare = share(0.25, None);
        let (new, _, reason) = requeued(decide(&input(&bare)));
        assert_eq!(new, whole);
        assert!(
            reason.contains("no reservation or measured peak"),
            "{reason}"
        );
        let req = share(0.25, Some(4000));
        let unknown = OomInput {
            largest_gpu_mb: None,
            ..input(&req)
        };
        let (new, _, reason) = requeued(decide(&unknown));
        assert_eq!(new, whole);
        assert!(reason.contains("memory is unknown"), "{reason}");
        let full = share(0.5, Some(24_000));
        let (new, _, reason) = requeued(decide(&input(&full)));
        assert_eq!(new, whole);
        assert!(reason.contains("already was the largest"), "{reason}");
    }

    #[test]
    fn a_second_oom_whole_gpus_and_cpu_runs_are_not_requeued() {
        let req = share(0.25, Some(8000));
        let again = OomInput {
            already_requeued: true,
            ..input(&req)
        };
        match decide(&again) {
            OomDecision::Fail { reason } => {
                assert!(reason.contains("again (8000 MiB reserved)"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let gang = ResourceRequest {
            gpus: 2,
            gpu_share: None,
            gpu_mem_mb: None,
        };
        assert!(
            matches!(decide(&input(&gang)), OomDecision::Fail { reason } if reason.contains("2 whole GPU(s)"))
        );
        let cpu = ResourceRequest::default();
        assert_eq!(decide(&input(&cpu)), OomDecision::NotGpu);
    }
}
