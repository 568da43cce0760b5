//! Runs of other engines. Every run is stored with the engine it was resolved for
//! (`engine::run_engine`: cauda's fingerprint, `cauda_plugins::train::engine_fingerprint`, and
//! the crates outside cauda whose plugins it uses), which is part of its config hash: after an
//! upgrade that changes the fingerprint, no stored run is reused for a new submission. Finished
//! runs stay as they are (reports mark them as older). Unfinished ones cannot go on: this
//! daemon's workers train only their own engine's runs and refuse a checkpoint of another. They
//! fail at start-up with the reason (resubmitting the spec trains them again with this engine),
//! rather than restarting in place: a restart would have to drop their stored epochs and
//! checkpoints, and a decoupled stage 2 would still start from an older engine's stage 1. An
//! attempt of another engine that a restarted daemon keeps (a Slurm job) is not retried when
//! it fails: every worker of this engine would refuse it again.

use super::daemon::state_event;
use super::{Daemon, Result};
use crate::model::{RunId, RunRecord, RunState};
use crate::store::{RunFilter, WriteOp};

/// An engine fingerprint in words: empty means a run stored before fingerprints.
pub fn engine_label(engine: &str) -> &str {
    if engine.is_empty() {
        "an engine before fingerprints"
    } else {
        engine
    }
}

impl Daemon {
    /// Fails the queued runs resolved for another engine (and their dependents) with the reason.
    /// Called at start-up under the write lock, after running runs went back to the queue.
    pub(super) fn fail_other_engines(&self) -> Result<Vec<RunId>> {
        let queued = self.store.list_runs(&RunFilter {
            state: Some(RunState::Queued),
            ..RunFilter::default()
        })?;
        let now = self.clock.now();
        let current = self.engine.fingerprint();
        let mut ops = Vec::new();
        let mut failed = Vec::new();
        for mut run in queued
            .into_iter()
            .filter(|r: &RunRecord| !self.engine.trains(&r.engine))
        {
            let why = format!(
                "planned for {}, but this daemon trains with {current}: resubmit the experiment to train it with this engine",
                engine_label(&run.engine)
            );
            run.state = RunState::Failed;
            run.finished_at = Some(now);
            run.pending_reason = None;
            run.grants.clear();
            run.error = Some(why.clone());
            failed.push(run.id);
            ops.push(WriteOp::AppendEvent(
                run.id,
                state_event(now, Some(RunState::Queued), RunState::Failed, Some(why)),
            ));
            ops.push(WriteOp::PutRun(run));
        }
        if ops.is_empty() {
            return Ok(failed);
        }
        self.commit(&ops)?;
        tracing::warn!(runs = failed.len(), engine = %current, "failed the queued runs of another engine");
        self.end_dependents(&failed, RunState::Failed)?;
        Ok(failed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::{Clock, DaemonSettings, NoopExecutor};
    use crate::scheduler::Inventory;
    use crate::store::{MemoryStore, Store};

    struct Fixed;
    impl Clock for Fixed {
        fn now(&self) -> crate::model::Millis {
            42
        }
    }

    fn spec(method: &str, seed: u64) -> String {
        format!(
            "name = \"p\"\nmethod = \"{method}\"\n[data]\nformat = \"digits\"\n[model]\nbackbone = \"mlp\"\n[train]\nepochs = 2\nseed = {seed}\n"
        )
    }

    #[test]
    fn unfinished_runs_of_another_engine_fail_at_start_up_with_their_dependents() {
        let store = Arc::new(MemoryStore::default());
        let settings = DaemonSettings {
            inventory: Inventory::from_spec(&["cpu:1".to_string()]).expect("inventory"),
            ..DaemonSettings::default()
        };
        let d = Daemon::new(
            store.clone(),
            settings,
            Arc::new(Fixed),
            Arc::new(NoopExecutor),
        );
        // cRT: its stage 1 runs, its stage 2 waits for it; then a plain run of this engine.
        let old = d
            .submit("old", &spec("crt", 1), "ada", None)
            .expect("submit");
        let (stage1, stage2) = (old.runs[0].0, old.runs[1].0);
        let current = d
            .submit("new", &spec("ce", 2), "ada", None)
            .expect("submit")
            .runs[0]
            .0;
        assert_eq!(d.get_run(stage1).expect("run").state, RunState::Running);
        for id in [stage1, stage2] {
            let mut run = store.get_run(id).expect("get").expect("stored");
            run.engine = "cauda-plugins 0.1.0 recipe 1".into();
            store.commit(&[WriteOp::PutRun(run)]).expect("commit");
        }

        assert!(d.recover().expect("recover").is_empty(), "none resumes");
        for id in [stage1, stage2] {
            let run = d.get_run(id).expect("run");
            assert_eq!(run.state, RunState::Failed, "{id}");
            let error = run.error.unwrap_or_default();
            assert!(
                error.starts_with("planned for cauda-plugins 0.1.0 recipe 1, but this daemon trains with cauda-plugins"),
                "{error}"
            );
        }
        let run = d.get_run(current).expect("run");
        assert_eq!(
            run.state,
            RunState::Running,
            "this engine's run takes the freed slot"
        );
        assert!(d.engine().trains(&run.engine));
        assert_eq!(engine_label(""), "an engine before fingerprints");
    }

    /// A Slurm job of another engine kept by a restarted daemon: when its worker refuses the
    /// run, the run fails at once instead of retrying into the same refusal.
    #[test]
    fn a_kept_attempt_of_another_engine_fails_without_retries() {
        let store = Arc::new(MemoryStore::default());
        let settings = DaemonSettings {
            inventory: Inventory::from_spec(&["cpu:1".to_string()]).expect("inventory"),
            max_retries: 2,
            ..DaemonSettings::default()
        };
        let d = Daemon::new(
            store.clone(),
            settings,
            Arc::new(Fixed),
            Arc::new(NoopExecutor),
        );
        let id = d
            .submit("old", &spec("ce", 1), "ada", None)
            .expect("submit")
            .runs[0]
            .0;
        let mut run = store.get_run(id).expect("get").expect("stored");
        run.engine = String::new();
        store.commit(&[WriteOp::PutRun(run)]).expect("commit");
        let kept = std::collections::HashSet::from([(id, 1)]);
        assert!(d.recover_keeping(&kept).expect("recover").is_empty());
        assert_eq!(d.get_run(id).expect("run").state, RunState::Running);
        d.finish(id, 1, crate::core::Ending::Failed("refused".into()))
            .expect("finish");
        let run = d.get_run(id).expect("run");
        assert_eq!((run.state, run.failures), (RunState::Failed, 0));
        assert_eq!(run.error.as_deref(), Some("refused"));
    }
}
