//! Every core call leaves the async runtime: the core takes std locks and waits for the store's
//! flush (group commit), and a tokio worker stuck in an fsync stalls every connection it serves.
//! Handlers hand the call to tokio's blocking pool and await it; the handler's span follows.
//! The pool is bounded (`MAX_BLOCKING_THREADS`): beyond it calls wait in the pool's queue, in
//! order, instead of each getting a thread (200 simultaneous submissions made 200 threads, all
//! sharing the two cores, so that every one of them finished late).

use std::sync::Arc;

use tonic::Status;

use crate::core::Daemon;

/// The most threads the daemon's runtime runs core calls on (`Builder::max_blocking_threads`):
/// enough for 64 reporting workers to share one flush.
pub const MAX_BLOCKING_THREADS: usize = 64;

/// Runs `f` on the daemon core on the blocking pool and returns what it returned.
pub(super) async fn core<T, F>(daemon: &Arc<Daemon>, f: F) -> Result<T, Status>
where
    F: FnOnce(&Daemon) -> Result<T, Status> + Send + 'static,
    T: Send + 'static,
{
    let daemon = daemon.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(|| f(&daemon)))
        .await
        .map_err(|e| Status::internal(format!("a daemon call failed to complete: {e}")))?
}
