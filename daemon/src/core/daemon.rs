//! The daemon core's state and write path; the scheduling pass is in `schedule`, cancellation
//! in `cancel`, submission in `submit`. Writes are applied under the write
//! lock and made durable by a flush shared with concurrent writers (`Store::wait_durable`);
//! nothing is launched, broadcast or acknowledged before its write is durable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use cauda_plugins::spec::PresetBook;
use tokio::sync::broadcast;

use super::recorder::{NoRecorder, Recorder};
use super::{Clock, CoreError, Executor, LiveEvent, Result};
use crate::engine::Engine;
use crate::model::{ExperimentId, RunId, RunState};
use crate::scheduler::{Inventory, SchedulerConfig};
use crate::store::{Event, EventKind, Store, Ticket, WriteOp};

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

/// A commit applied to the store but not yet durable: `Daemon::settle` waits for its flush, then
/// broadcasts its events (watchers never see an event that a crash could take back).
#[must_use = "a pending commit is neither durable nor broadcast until settled"]
pub(super) struct Pending {
    pub(super) ticket: Ticket,
    events: Vec<LiveEvent>,
}

impl Pending {
    /// One pending write per group of runs, each with the same ticket and the events of its
    /// own runs (events of no group's runs go with the first).
    pub(super) fn split(self, groups: &[Vec<RunId>]) -> Vec<Pending> {
        let mut out: Vec<Pending> = groups
            .iter()
            .map(|_| Pending {
                ticket: self.ticket,
                events: Vec::new(),
            })
            .collect();
        let owner: HashMap<RunId, usize> = groups
            .iter()
            .enumerate()
            .flat_map(|(i, runs)| runs.iter().map(move |run| (*run, i)))
            .collect();
        for event in self.events {
            let i = owner.get(&event.0).copied().unwrap_or(0);
            if let Some(p) = out.get_mut(i) {
                p.events.push(event);
            }
        }
        out
    }
}

/// The daemon core, shared (`Arc`) by every RPC handler. Its methods are synchronous and may
/// wait for a flush: async callers run them with `spawn_blocking`.
pub struct Daemon {
    pub(super) store: Arc<dyn Store>,
    pub(super) settings: DaemonSettings,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) executor: Arc<dyn Executor>,
    /// The engine's presets plus the watched presets folder's; replaced whole on a reload.
    pub(super) presets: RwLock<PresetBook>,
    /// The plugins and presets this daemon serves (its embedder's: `cli::main_with`).
    pub(super) engine: Engine,
    live: broadcast::Sender<LiveEvent>,
    /// When each running attempt last showed a sign of life (launch, register, heartbeat,
    /// report), in clock milliseconds; memory only: a restart gives every attempt a new start.
    pub(super) last_seen: Mutex<HashMap<(RunId, u32), crate::model::Millis>>,
    /// Why each queued run that the last scheduling pass did not start waits, as that pass
    /// said (`schedule`). Derived state, memory only: every pass recomputes it whole, reads
    /// show it instead of the stored reason (`query`), and a restart's first pass fills it.
    pub(super) reasons: Mutex<HashMap<RunId, String>>,
    /// Config hash -> the stored run a new submission may reuse (queued, running or succeeded),
    /// built from the store on first use and kept current by `commit`.
    pub(super) reusable: Mutex<Option<HashMap<String, RunId>>>,
    /// Submissions waiting for their group (`submit_queue`), and whether a group left its
    /// scheduling pass to the next one (`submit_group`: a burst schedules once).
    pub(super) submissions: super::submit_queue::SubmitQueue,
    pub(super) schedule_owed: std::sync::atomic::AtomicBool,
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
    /// A daemon over `store` with cauda's own plugins and presets ([`Engine::builtin`]; another
    /// engine with [`Daemon::with_engine`]).
    pub fn new(
        store: Arc<dyn Store>,
        settings: DaemonSettings,
        clock: Arc<dyn Clock>,
        executor: Arc<dyn Executor>,
    ) -> Self {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        let engine = Engine::builtin();
        Self {
            store,
            settings,
            clock,
            executor,
            presets: RwLock::new(engine.presets().clone()),
            engine,
            live,
            last_seen: Mutex::new(HashMap::new()),
            reasons: Mutex::new(HashMap::new()),
            reusable: Mutex::new(None),
            submissions: Default::default(),
            schedule_owed: std::sync::atomic::AtomicBool::new(false),
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

    /// The same daemon serving `engine`'s plugins and presets instead of cauda's own (before
    /// any presets folder is opened: the folder's presets are added to the engine's).
    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.presets = RwLock::new(engine.presets().clone());
        self.engine = engine;
        self
    }

    /// The plugins and presets this daemon serves.
    pub fn engine(&self) -> &Engine {
        &self.engine
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

    /// Waits until `pending` is durable, then broadcasts its events. A write that never became
    /// durable may be gone (the sled store reopens after a full disk and drops what it had not
    /// flushed), so the reuse index, which took it in when it was applied, is rebuilt from the
    /// store on its next use: otherwise the same spec submitted again "reused" a run the store
    /// no longer held and failed with run-not-found.
    pub(super) fn settle(&self, pending: Pending) -> Result<()> {
        if let Err(e) = self.store.wait_durable(pending.ticket) {
            self.reset_reusable();
            return Err(e.into());
        }
        for event in pending.events {
            // No receiver is not an error: nobody is watching.
            let _ = self.live.send(event);
        }
        Ok(())
    }

    /// Drops the reuse index, to be rebuilt from the store on its next use: after a write that
    /// failed or never became durable, it may name runs the store does not hold.
    pub(super) fn reset_reusable(&self) {
        if let Ok(mut reusable) = self.reusable.lock() {
            *reusable = None;
        }
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
