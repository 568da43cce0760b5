//! Who places runs on devices, as a policy: this machine's devices (`Placement::Local`: the
//! packing, order, fair share and backfill of [`decide`]), or a cluster's batch scheduler
//! (`Placement::Cluster`, e.g. Slurm: every ready run is dispatched at once with no local grants,
//! and the cluster queues and places them). The daemon asks its executor which applies and passes
//! it here; it never branches on the executor itself.

use crate::{Decision, SchedulerInput, decide};

/// Who places runs on devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// This machine's inventory, by [`decide`].
    Local,
    /// A cluster's batch scheduler (Slurm) queues and places the runs.
    Cluster,
}

/// The decision for `input` under `placement`.
pub fn schedule(placement: Placement, input: &SchedulerInput) -> Decision {
    match placement {
        Placement::Local => decide(input),
        Placement::Cluster => dispatch_all(input),
    }
}

/// The decision when the cluster places runs: every ready pending run starts now, with no
/// local grants, in priority then submission order; the others wait for their dependency.
fn dispatch_all(input: &SchedulerInput) -> Decision {
    let mut pending: Vec<_> = input.pending.iter().collect();
    pending.sort_by_key(|p| (std::cmp::Reverse(p.priority), p.submitted_at, p.id));
    let mut decision = Decision::default();
    for p in pending {
        if p.ready {
            decision.starts.push((p.id, Vec::new()));
        } else {
            let why = match p.depends_on {
                Some(dep) => format!("waiting for {dep} (stage 1)"),
                None => "waiting for the runs it depends on".to_string(),
            };
            decision.reasons.push((p.id, why));
        }
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PendingRun;
    use cauda_model::{ResourceRequest, RunId};

    fn pending(id: u64, priority: i32, at: u64, dep: Option<u64>) -> PendingRun {
        PendingRun {
            id: RunId(id),
            user: "u".into(),
            priority,
            submitted_at: at,
            request: ResourceRequest {
                gpus: 8,
                ..ResourceRequest::default()
            },
            ready: dep.is_none(),
            depends_on: dep.map(RunId),
        }
    }

    #[test]
    fn every_ready_run_starts_without_grants_in_priority_order() {
        let input = SchedulerInput {
            pending: vec![
                pending(1, 0, 10, None),
                pending(2, 5, 20, None),
                pending(3, 0, 5, Some(1)),
                pending(4, 0, 5, None),
            ],
            ..SchedulerInput::default()
        };
        let d = dispatch_all(&input);
        let ids: Vec<u64> = d.starts.iter().map(|(id, _)| id.0).collect();
        assert_eq!(ids, vec![2, 4, 1], "priority, then submission time");
        assert!(d.starts.iter().all(|(_, g)| g.is_empty()));
        assert_eq!(
            d.reasons,
            vec![(RunId(3), "waiting for r-1 (stage 1)".to_string())]
        );
    }
}
