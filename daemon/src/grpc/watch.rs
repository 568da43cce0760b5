//! WatchRun: replay a run's stored events from `from_seq`, then follow live ones with no gap and
//! no duplicate (subscribe first, replay, then skip sequence numbers already sent), and end
//! after the event that makes the run terminal.

use std::sync::Arc;

use cauda_proto::v1;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::Instrument;

use super::convert;
use crate::core::{Daemon, LiveEvent};
use crate::model::RunId;
use crate::store::{Event, EventKind};

/// Events buffered per watcher before the sender waits for the client.
const BUFFER: usize = 64;

/// Starts a watch; fails at once with NOT_FOUND for an unknown run.
pub(super) fn watch(
    daemon: Arc<Daemon>,
    req: v1::WatchRunRequest,
) -> Result<ReceiverStream<Result<v1::RunEvent, Status>>, Status> {
    let id = RunId(req.run_id);
    // Subscribe before reading the store so nothing committed in between is missed.
    let live = daemon.subscribe();
    daemon.get_run(id)?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut watcher = Watcher {
        daemon,
        id,
        kinds: req.kinds,
        tx,
        next: req.from_seq.saturating_sub(1),
        attempt: 0,
        grants: Vec::new(),
    };
    let span = tracing::info_span!("watch_run_stream", run_id = %id);
    tokio::spawn(
        async move {
            watcher.run(live, req.replay_only).await;
        }
        .instrument(span),
    );
    Ok(ReceiverStream::new(rx))
}

struct Watcher {
    daemon: Arc<Daemon>,
    id: RunId,
    kinds: Vec<i32>,
    tx: mpsc::Sender<Result<v1::RunEvent, Status>>,
    /// The next store sequence number to send (store numbers count from 0).
    next: u64,
    /// The attempt the events belong to, followed through Launch records.
    attempt: u32,
    /// The grants of that attempt, sent with its change to RUNNING.
    grants: Vec<crate::model::Grant>,
}

/// Whether to go on after an event.
enum Flow {
    Continue,
    Stop,
}

impl Watcher {
    async fn run(&mut self, mut live: broadcast::Receiver<LiveEvent>, replay_only: bool) {
        if let Flow::Stop = self.replay().await {
            return;
        }
        if replay_only {
            return;
        }
        // A run that ended before `from_seq` sends nothing more: end now.
        match self.daemon.get_run(self.id) {
            Ok(run) if run.state.is_terminal() => return,
            Ok(_) => {}
            Err(e) => {
                let _ = self.tx.send(Err(e.into())).await;
                return;
            }
        }
        loop {
            let flow = match live.recv().await {
                Ok((run, seq, event)) if run == self.id && seq >= self.next => {
                    // A gap means events were committed before we subscribed and after the
                    // replay read: read them from the store.
                    if seq > self.next {
                        if let Flow::Stop = self.replay().await {
                            return;
                        }
                        if seq < self.next {
                            continue;
                        }
                    }
                    self.send(seq, &event).await
                }
                Ok(_) => Flow::Continue,
                Err(broadcast::error::RecvError::Lagged(_)) => self.replay().await,
                Err(broadcast::error::RecvError::Closed) => Flow::Stop,
            };
            if let Flow::Stop = flow {
                return;
            }
        }
    }

    /// Sends the stored events from `next` on.
    async fn replay(&mut self) -> Flow {
        let stored = match self.daemon.events(self.id, self.next) {
            Ok(stored) => stored,
            Err(e) => {
                let _ = self.tx.send(Err(e.into())).await;
                return Flow::Stop;
            }
        };
        for (seq, event) in stored {
            if let Flow::Stop = self.send(seq, &event).await {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Sends one event (unless filtered out) and advances `next`; stops after a terminal state
    /// or when the client went away.
    async fn send(&mut self, seq: u64, event: &Event) -> Flow {
        self.next = seq + 1;
        if let EventKind::Launch {
            attempt, grants, ..
        } = &event.kind
        {
            self.attempt = *attempt;
            self.grants.clone_from(grants);
        }
        let metric = match &event.kind {
            EventKind::Epoch { epoch, .. } => {
                self.daemon.metric_point(self.id, *epoch).ok().flatten()
            }
            _ => None,
        };
        let ctx = convert::EventContext {
            grants: &self.grants,
            metric: metric.as_ref(),
        };
        let attempt = match &event.kind {
            EventKind::Epoch { attempt, .. } => *attempt,
            _ => self.attempt,
        };
        if let Some(wire) = convert::event_to_wire(seq, event, attempt, &ctx)
            && self.wanted(&wire)
            && self.tx.send(Ok(wire)).await.is_err()
        {
            return Flow::Stop;
        }
        if convert::is_terminal_event(event) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn wanted(&self, wire: &v1::RunEvent) -> bool {
        let kind = match &wire.event {
            Some(v1::run_event::Event::State(_)) => v1::RunEventKind::State,
            Some(v1::run_event::Event::Epoch(_)) => v1::RunEventKind::Epoch,
            Some(v1::run_event::Event::Log(_)) => v1::RunEventKind::Log,
            None => v1::RunEventKind::Unspecified,
        };
        self.kinds.is_empty() || self.kinds.contains(&(kind as i32))
    }
}
