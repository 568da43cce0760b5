//! 200 simultaneous submissions on the daemon alone: `n` clients, each on its own connection
//! (opened beforehand), submit a one-run experiment at the same instant; every run queues
//! (one GPU each, none in the inventory), as in `bench/load.sh` but without the training
//! processes and watchers that share the cores there. Measures each call from the common start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use tokio::sync::Barrier;

use crate::rig::{Rig, spec, submit};

/// The latency of each of `n` simultaneous submissions.
pub fn burst(n: usize) -> anyhow::Result<Vec<Duration>> {
    let (rig, mut launches) = Rig::start(&["cpu:1"])?;
    let runtime = crate::client_runtime()?;
    let samples = runtime.block_on(async {
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            clients.push(rig.cauda().await?);
        }
        let specs: Vec<String> = (0..n)
            .map(|i| spec(&format!("burst-{i}"), 1, None))
            .collect();
        let barrier = Arc::new(Barrier::new(n));
        let mut tasks = tokio::task::JoinSet::new();
        for (mut client, text) in clients.into_iter().zip(specs) {
            let barrier = barrier.clone();
            tasks.spawn(async move {
                barrier.wait().await;
                let start = Instant::now();
                let (_, runs) = submit(&mut client, &text).await?;
                ensure!(runs.len() == 1, "a one-run spec gave {} runs", runs.len());
                anyhow::Ok(start.elapsed())
            });
        }
        let mut samples = Vec::with_capacity(n);
        while let Some(done) = tasks.join_next().await {
            samples.push(done.context("a submitting client panicked")??);
        }
        launches.expect_none()?;
        anyhow::Ok(samples)
    });
    drop(runtime);
    rig.stop()?;
    samples
}
