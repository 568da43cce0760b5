//! The daemon core's state and write path: schedule (the policy decides, the store records, then
//! the executor acts) and cancel; submission is in `submit`. Writes are applied under the write
//! lock and made durable by a flush shared with concurrent writers (`Store::wait_durable`);
//! nothing is launched, broadcast or acknowledged before its write is durable.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use cauda_plugins::registry::{Registry, builtin_registry};
use cauda_plugins::spec::PresetBook;
use tokio::sync::broadcast;

use super::recorder::{ExitCause, NoRecorder, Recorder};
use super::{Clock, CoreError, Executor, LiveEvent, Result};
use crate::model::{Actor, ExperimentId, RunId, RunRecord, RunState};
use crate::scheduler::{Inventory, PendingRun, SchedulerConfig, SchedulerInput, Usage, schedule};
use crate::store::{Event, EventKind, RunBrief, RunFilter, Store, Ticket, WriteOp};

/// How many live events a slow watcher may lag behind before it must re-read the store.
const LIVE_CAPACITY: usize = 4096;

/// The daemon's knobs that the core needs (from `caudad.toml`).
#[derive(Debug, Clone, Default)]
pub struct DaemonSettings {
    pub inventory: Inventory,
    pub scheduler: SchedulerConfig,
    /// Retries allowed after a failed attempt, stored with every run.
    pub max_retries: u32,
    /// `[backends] gpu`: the backend of GPU runs whose spec names none (docs/GPU.md).
    pub gpu_backend: Option<cauda_plugins::train::Backend>,
    /// `[commands]`: whether, and for whom, specs may describe command runs.
    pub commands: super::CommandPolicy,
}

/// What a submission created: the experiment, its new runs (id, name) in plan order, and the
/// stored runs it reuses instead of training them again.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub experiment: ExperimentId,
    pub runs: Vec<(RunId, String)>,
    pub reused: Vec<(RunId, String)>,
}

/// Which runs a cancellation targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelTarget {
    Run(RunId),
    Experiment(ExperimentId),
}

/// What a cancellation did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CancelOutcome {
    pub cancelled: Vec<RunId>,
    pub already_finished: Vec<RunId>,
}

/// A commit applied to the store but not yet durable: `Daemon::settle` waits for its flush, then
/// broadcasts its events (watchers never see an event that a crash could take back).
#[must_use = "a pending commit is neither durable nor broadcast until settled"]
pub(super) struct Pending {
    pub(super) ticket: Ticket,
    events: Vec<LiveEvent>,
}

/// The daemon core, shared (`Arc`) by every RPC handler. Its methods are synchronous and may
/// wait for a flush: async callers run them with `spawn_blocking`.
pub struct Daemon {
    pub(super) store: Arc<dyn Store>,
    pub(super) settings: DaemonSettings,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) executor: Arc<dyn Executor>,
    /// Built-in presets plus the watched presets folder's; replaced whole on a reload.
    pub(super) presets: RwLock<PresetBook>,
    pub(super) registry: Registry,
    live: broadcast::Sender<LiveEvent>,
    /// When each running attempt last showed a sign of life (launch, register, heartbeat,
    /// report), in clock milliseconds; memory only: a restart gives every attempt a new start.
    pub(super) last_seen: Mutex<HashMap<(RunId, u32), crate::model::Millis>>,
    /// Config hash -> the stored run a new submission may reuse (queued, running or succeeded),
    /// built from the store on first use and kept current by `commit`.
    pub(super) reusable: Mutex<Option<HashMap<String, RunId>>>,
    /// The most queued runs one user may have (0: no limit); see `quota`.
    pub(super) max_queued: std::sync::atomic::AtomicU32,
    /// The most GPUs one user's runs may hold (0: no limit); see `quota`.
    pub(super) max_gpus: std::sync::atomic::AtomicU32,
    /// Where submitted specs' data paths must lead (`paths`); `None` checks nothing.
    pub(super) data_roots: RwLock<Option<super::paths::DataRoots>>,
    /// Config hash -> the largest GPU memory peak measured for it (`peak`), built from the
    /// store on first use and kept current by `record_peak`.
    pub(super) peaks: Mutex<Option<HashMap<String, super::peak::KnownPeak>>>,
    /// Told of dispatches, stored epochs and ended attempts (`recorder`; monitoring).
    pub(super) recorder: Arc<dyn Recorder>,
    /// Serializes the read-decide-write sections (submit, schedule, cancel). Never held across
    /// an `.await`: every method here is synchronous.
    write: Mutex<()>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// A daemon over `store` with the built-in presets and plugin registry.
    pub fn new(
        store: Arc<dyn Store>,
        settings: DaemonSettings,
        clock: Arc<dyn Clock>,
        executor: Arc<dyn Executor>,
    ) -> Self {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        Self {
            store,
            settings,
            clock,
            executor,
            presets: RwLock::new(PresetBook::builtin()),
            registry: builtin_registry(),
            live,
            last_seen: Mutex::new(HashMap::new()),
            reusable: Mutex::new(None),
            max_queued: std::sync::atomic::AtomicU32::new(0),
            max_gpus: std::sync::atomic::AtomicU32::new(0),
            data_roots: RwLock::new(None),
            peaks: Mutex::new(None),
            recorder: Arc::new(NoRecorder),
            write: Mutex::new(()),
        }
    }

    /// The same daemon reporting its events to `recorder` (the Prometheus metrics) instead of
    /// keeping none.
    pub fn with_recorder(mut self, recorder: Arc<dyn Recorder>) -> Self {
        self.recorder = recorder;
        self
    }

    /// Where this daemon's events go: executors report theirs (a failed cluster poll) here too.
    pub fn recorder(&self) -> &dyn Recorder {
        &*self.recorder
    }

    /// Live events from now on (subscribe before replaying the store to miss none).
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }

    /// Replaces the presets submissions resolve against (the built-in ones plus a folder's).
    pub fn set_presets(&self, book: PresetBook) -> Result<()> {
        *self
            .presets
            .write()
            .map_err(|_| CoreError::Internal("the presets lock was poisoned".into()))? = book;
        Ok(())
    }

    /// The names of the presets submissions can use now.
    pub fn preset_names(&self) -> Vec<String> {
        self.presets
            .read()
            .map(|b| b.names().into_iter().map(str::to_string).collect())
            .unwrap_or_default()
    }

    pub(super) fn lock(&self) -> Result<MutexGuard<'_, ()>> {
        self.write
            .lock()
            .map_err(|_| CoreError::Internal("the daemon's write lock was poisoned".into()))
    }

    /// Broadcasts one stored event (as stored: bounded) to the live watchers.
    pub(super) fn broadcast(&self, run: RunId, seq: u64, event: &Event) {
        // No receiver is not an error: nobody is watching.
        let _ = self.live.send((run, seq, event.bounded()));
    }

    /// Commits `ops` atomically and durably, then broadcasts their events with their sequence
    /// numbers.
    pub(super) fn commit(&self, ops: &[WriteOp]) -> Result<()> {
        let pending = self.commit_applied(ops)?;
        self.settle(pending)
    }

    /// Waits until `pending` is durable, then broadcasts its events.
    pub(super) fn settle(&self, pending: Pending) -> Result<()> {
        self.store.wait_durable(pending.ticket)?;
        for event in pending.events {
            // No receiver is not an error: nobody is watching.
            let _ = self.live.send(event);
        }
        Ok(())
    }

    /// Applies `ops` atomically (readers see them) without waiting for their flush: call
    /// `settle` before anyone acts on them, ideally after releasing the write lock so that
    /// concurrent writers share the flush.
    pub(super) fn commit_applied(&self, ops: &[WriteOp]) -> Result<Pending> {
        let (seqs, ticket) = self.store.commit_applied(ops)?;
        if let Ok(mut reusable) = self.reusable.lock()
            && let Some(index) = reusable.as_mut()
        {
            for op in ops {
                if let WriteOp::PutRun(run) = op {
                    if matches!(
                        run.state,
                        RunState::Queued | RunState::Running | RunState::Succeeded
                    ) {
                        index.insert(run.config_hash.clone(), run.id);
                    } else if index.get(&run.config_hash) == Some(&run.id) {
                        index.remove(&run.config_hash);
                    }
                }
            }
        }
        let events = ops.iter().filter_map(|op| match op {
            WriteOp::AppendEvent(run, event) => Some((*run, event)),
            _ => None,
        });
        let events = events
            .zip(seqs)
            .map(|((run, event), seq)| (run, seq, event.bounded()))
            .collect();
        Ok(Pending { ticket, events })
    }

    /// Asks the policy what to start now; records starts and pending reasons, then launches.
    pub fn schedule(&self) -> Result<()> {
        let _guard = self.lock()?;
        self.schedule_locked()
    }

    /// A scheduling pass under the write lock. It reads the runs' briefs (not their configs),
    /// commits every start, waits for ONE flush covering them all, then launches. Changed
    /// pending reasons are applied without waiting: they are derived, recomputed by every pass,
    /// and made durable by the next flush (a caller that acknowledges them waits for
    /// `Store::newest_ticket`, as `submit` does).
    pub(super) fn schedule_locked(&self) -> Result<()> {
        let now = self.clock.now();
        let running = self.store.list_run_briefs(&RunFilter {
            state: Some(RunState::Running),
            ..RunFilter::default()
        })?;
        let queued = self.store.list_run_briefs(&RunFilter {
            state: Some(RunState::Queued),
            ..RunFilter::default()
        })?;
        let mut input = SchedulerInput {
            now,
            inventory: self.settings.inventory.clone(),
            config: self.settings.scheduler,
            gpu_quota: self.gpu_quota(),
            ..SchedulerInput::default()
        };
        for run in &running {
            input.allocations.insert(run.id, run.grants.clone());
            input
                .usage
                .entry(run.user.clone())
                .or_default()
                .add(Usage::of_grants(&run.grants));
        }
        for run in &queued {
            let ready = match run.depends_on {
                Some(dep) => self
                    .store
                    .get_run(dep)?
                    .is_some_and(|d| d.state == RunState::Succeeded),
                None => true,
            };
            input.pending.push(PendingRun {
                id: run.id,
                user: run.user.clone(),
                priority: run.priority,
                submitted_at: run.submitted_at,
                request: run.request.clone(),
                ready,
                depends_on: run.depends_on,
            });
        }
        let decision = schedule(self.executor.placement(), &input);
        let mut by_id: BTreeMap<RunId, RunBrief> = queued.into_iter().map(|r| (r.id, r)).collect();
        let mut started: Vec<(RunRecord, Pending)> = Vec::new();
        // A failed start stops the pass, but the starts applied before it are still launched.
        let mut failed = None;
        for (id, grants) in decision.starts {
            if by_id.remove(&id).is_none() {
                continue;
            }
            match self.apply_start(id, grants, now) {
                Ok(Some(start)) => started.push(start),
                Ok(None) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        // One flush for every start (the last ticket covers the earlier ones), then launch.
        if let Some(last) = started.last().map(|(_, p)| p.ticket) {
            self.store.wait_durable(last)?;
        }
        for (run, pending) in started {
            self.settle(pending)?;
            tracing::info!(run_id = %run.id, attempt = run.attempt, "run started");
            if run.attempt == 1 {
                let waited = now.saturating_sub(run.submitted_at);
                self.recorder
                    .dispatched(std::time::Duration::from_millis(waited));
            }
            self.saw(run.id, run.attempt);
            self.executor.launch(&run);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let mut reasons = Vec::new();
        for (id, why) in decision.reasons {
            if let Some(brief) = by_id.remove(&id)
                && brief.pending_reason.as_deref() != Some(why.as_str())
                && let Some(mut run) = self.store.get_run(id)?
            {
                run.pending_reason = Some(why);
                reasons.push(WriteOp::PutRun(run));
            }
        }
        if !reasons.is_empty() {
            // Derived state: durable with the next flush (see above); no events to broadcast.
            let Pending { .. } = self.commit_applied(&reasons)?;
        }
        Ok(())
    }

    /// Applies the start of queued run `id` on `grants` (state, attempt + 1, its `launch` and
    /// `running` events); `None` when the run is gone.
    fn apply_start(
        &self,
        id: RunId,
        grants: Vec<crate::model::Grant>,
        now: crate::model::Millis,
    ) -> Result<Option<(RunRecord, Pending)>> {
        let Some(mut run) = self.store.get_run(id)? else {
            return Ok(None);
        };
        run.state = RunState::Running;
        run.attempt += 1;
        run.started_at = Some(now);
        run.pending_reason = None;
        run.grants = grants;
        let devices = run.grants.iter().map(|g| g.device.clone()).collect();
        let to_running = state_event(now, Some(RunState::Queued), RunState::Running, None);
        let launch = Event {
            at: now,
            kind: EventKind::Launch {
                attempt: run.attempt,
                devices,
                grants: run.grants.clone(),
            },
        };
        let pending = self.commit_applied(&[
            WriteOp::PutRun(run.clone()),
            WriteOp::AppendEvent(id, launch),
            WriteOp::AppendEvent(id, to_running),
        ])?;
        Ok(Some((run, pending)))
    }

    /// Cancels one run or every unfinished run of an experiment; finished runs are left as
    /// they are. Devices are free at once; then the queue is scheduled again.
    pub fn cancel(&self, target: CancelTarget, reason: Option<String>) -> Result<CancelOutcome> {
        self.cancel_as(&Actor::unchecked(), target, reason)
    }

    /// `cancel` on behalf of `actor`: every run it would cancel must be the actor's own unless
    /// the actor is an admin (`NotOwner` otherwise, and nothing is cancelled).
    pub fn cancel_as(
        &self,
        actor: &Actor,
        target: CancelTarget,
        reason: Option<String>,
    ) -> Result<CancelOutcome> {
        let _guard = self.lock()?;
        let runs = match target {
            CancelTarget::Run(id) => {
                vec![self.store.get_run(id)?.ok_or(CoreError::RunNotFound(id))?]
            }
            CancelTarget::Experiment(id) => {
                self.store
                    .get_experiment(id)?
                    .ok_or(CoreError::ExperimentNotFound(id))?;
                self.store.list_runs(&RunFilter {
                    experiment: Some(id),
                    ..RunFilter::default()
                })?
            }
        };
        if let Some(run) = runs.iter().find(|r| !actor.may_act_for(&r.user)) {
            return Err(CoreError::NotOwner {
                run: run.id,
                owner: run.user.clone(),
                actor: actor.name.clone(),
            });
        }
        let now = self.clock.now();
        let mut outcome = CancelOutcome::default();
        let mut ops = Vec::new();
        let mut stopped = Vec::new();
        for mut run in runs {
            if run.state.is_terminal() {
                outcome.already_finished.push(run.id);
                continue;
            }
            let from = run.state;
            run.state = RunState::Cancelled;
            run.finished_at = Some(now);
            run.pending_reason = None;
            run.grants.clear();
            outcome.cancelled.push(run.id);
            ops.push(WriteOp::AppendEvent(
                run.id,
                state_event(now, Some(from), RunState::Cancelled, reason.clone()),
            ));
            if from == RunState::Running {
                stopped.push(run.clone());
            }
            ops.push(WriteOp::PutRun(run));
        }
        if !ops.is_empty() {
            self.commit(&ops)?;
        }
        for run in &stopped {
            self.executor.cancel(run);
            self.recorder.attempt_ended(ExitCause::Cancelled);
        }
        for id in &outcome.cancelled {
            self.end_dependents(*id, RunState::Cancelled)?;
        }
        tracing::info!(cancelled = outcome.cancelled.len(), "runs cancelled");
        self.schedule_locked()?;
        Ok(outcome)
    }
}

pub(super) fn state_event(
    at: crate::model::Millis,
    from: Option<RunState>,
    to: RunState,
    reason: Option<String>,
) -> Event {
    Event {
        at,
        kind: EventKind::State { from, to, reason },
    }
}
