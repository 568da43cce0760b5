//! Watched folders: an inbox where a dropped spec file is submitted (then moved to `submitted/`
//! or `rejected/`), and a presets folder whose method presets are reloaded live. `notify` feeds
//! one channel consumed by a named std thread, so the daemon's tokio runtime is never blocked;
//! the core calls made there are synchronous and short.

mod dropped;
mod inbox;
mod presets;
mod settle;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

pub use dropped::Problem;
pub use inbox::{Inbox, Outcome, REJECTED, SUBMITTED};
pub use presets::Presets;

use dropped::is_candidate;

use crate::config::DaemonConfig;
use crate::core::Daemon;

/// How long a file's size and modification time must stay the same before it is read, so a
/// file still being written is never taken half.
pub const QUIET: Duration = Duration::from_millis(200);
/// How often files waiting to settle are looked at again.
const TICK: Duration = Duration::from_millis(50);

/// Why the watched folders could not start.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("creating the folder {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("watching {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("the inbox and the presets folder must be different folders ({})", path.display())]
    SameFolder { path: PathBuf },
    #[error("starting the folder watcher thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// The running watchers; dropping it stops them (and waits for the watcher thread).
pub struct Folders {
    watchers: Vec<RecommendedWatcher>,
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Folders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Folders")
            .field("watchers", &self.watchers.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Folders {
    fn drop(&mut self) {
        self.watchers.clear();
        // The thread may already be gone; then there is nobody to tell.
        let _ = self.tx.send(Msg::Stop);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the folder watcher thread panicked");
        }
    }
}

/// What the watcher thread is told.
enum Msg {
    Event(notify::Result<notify::Event>),
    Stop,
}

/// Starts the folders `config` names (`inbox`, `presets`; either may be absent): creates them
/// if missing, loads the presets folder into `daemon` (before returning), then, on the watcher
/// thread, submits what the inbox already holds (by name) and watches both until the returned
/// handle is dropped. Works inside or outside a tokio runtime.
pub fn start(config: &DaemonConfig, daemon: Arc<Daemon>) -> Result<Folders, FolderError> {
    let (tx, rx) = mpsc::channel();
    let mut folders = Folders {
        watchers: Vec::new(),
        tx: tx.clone(),
        thread: None,
    };
    let inbox = config
        .inbox
        .as_deref()
        .map(|dir| Inbox::open(dir, daemon.clone()))
        .transpose()?;
    let presets = config
        .presets
        .as_deref()
        .map(|dir| Presets::open(dir, daemon))
        .transpose()?;
    if let (Some(i), Some(p)) = (&inbox, &presets)
        && i.dir() == p.dir()
    {
        return Err(FolderError::SameFolder {
            path: i.dir().to_path_buf(),
        });
    }
    // One watcher for both folders keeps their events in one order (a preset written before
    // a spec that names it is taken first). Watch before the first scan so a file dropped in
    // between is not missed (a file seen twice is harmless: it is gone the second time).
    let dirs: Vec<&Path> = inbox
        .iter()
        .map(Inbox::dir)
        .chain(presets.iter().map(Presets::dir))
        .collect();
    if !dirs.is_empty() {
        folders
            .watchers
            .push(watch(&dirs, move |e| tx.send(Msg::Event(e)))?);
    }
    if inbox.is_none() && presets.is_none() {
        return Ok(folders);
    }
    let thread = std::thread::Builder::new()
        .name("caudad-folders".into())
        .spawn(move || run(&rx, inbox, presets))
        .map_err(FolderError::Spawn)?;
    folders.thread = Some(thread);
    Ok(folders)
}

/// A watcher on each of `dirs` (not their subfolders) whose events go to `send`.
fn watch<F, E>(dirs: &[&Path], send: F) -> Result<RecommendedWatcher, FolderError>
where
    F: Fn(notify::Result<notify::Event>) -> Result<(), E> + Send + 'static,
{
    let err = |dir: &Path| {
        let path = dir.to_path_buf();
        move |source| FolderError::Watch { path, source }
    };
    let first = dirs.first().copied().unwrap_or(Path::new("."));
    let mut watcher = notify::recommended_watcher(move |event| {
        // The thread is gone only when the folders are being dropped.
        let _ = send(event);
    })
    .map_err(err(first))?;
    for dir in dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(err(dir))?;
    }
    Ok(watcher)
}

/// The watcher thread: routes events, and takes settled files (presets first, so a spec
/// dropped together with the preset it names finds it).
fn run(rx: &Receiver<Msg>, mut inbox: Option<Inbox>, mut presets: Option<Presets>) {
    if let Some(i) = inbox.as_mut() {
        i.rescan(Instant::now());
    }
    let mut last_poll = Instant::now();
    loop {
        let busy =
            inbox.as_ref().is_some_and(Inbox::busy) || presets.as_ref().is_some_and(Presets::busy);
        let msg = if busy {
            match rx.recv_timeout(TICK) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => return,
            }
        };
        let now = Instant::now();
        match msg {
            Some(Msg::Stop) => return,
            Some(Msg::Event(event)) => match changed(event) {
                Change::Paths(paths) => {
                    for path in paths {
                        let parent = path.parent();
                        if let Some(i) = inbox.as_mut().filter(|i| parent == Some(i.dir())) {
                            i.note(&path, now);
                        } else if let Some(p) = presets.as_mut().filter(|p| parent == Some(p.dir()))
                        {
                            p.note(&path, now);
                        }
                    }
                }
                Change::Rescan => {
                    if let Some(p) = presets.as_mut() {
                        p.rescan(now);
                    }
                    if let Some(i) = inbox.as_mut() {
                        i.rescan(now);
                    }
                }
            },
            None => {}
        }
        // Under a flood of events, look at waiting files once a tick, not once an event.
        if now.duration_since(last_poll) >= TICK {
            last_poll = now;
            if let Some(p) = presets.as_mut() {
                p.poll(now);
            }
            if let Some(i) = inbox.as_mut() {
                i.poll(now);
            }
        }
    }
}

/// What an event means for a folder.
enum Change {
    Paths(Vec<PathBuf>),
    /// Events were lost (or the watcher failed): look at the whole folder again.
    Rescan,
}

fn changed(event: notify::Result<notify::Event>) -> Change {
    match event {
        Err(e) => {
            tracing::warn!(error = %e, "folder watcher error; rescanning");
            Change::Rescan
        }
        Ok(e) if e.need_rescan() => Change::Rescan,
        // Opening and reading (our own reads included) change nothing.
        Ok(e) if matches!(e.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write)) => {
            Change::Paths(Vec::new())
        }
        Ok(e) => Change::Paths(e.paths.into_iter().filter(|p| is_candidate(p)).collect()),
    }
}
