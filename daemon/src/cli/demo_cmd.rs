//! `caudad demo`: the main job on the embedded defaults, through the real daemon. It starts a
//! daemon in this process (gRPC on 127.0.0.1, a sled store in a fresh folder, one worker process
//! per run), submits the demo study (`examples/digits-demo.toml`, embedded) over gRPC like the
//! `cauda` client does, follows the runs to the end and prints the experiment's report exactly
//! as `cauda report` does: the daemon's own `GetReport` reply rendered by `cauda-report`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cauda_proto::v1::{self, cauda_client::CaudaClient};

use crate::config::DaemonConfig;
use crate::engine::Engine;
use crate::node::Node;

const DEMO: &str = include_str!("../../../examples/digits-demo.toml");

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Train with this seed (default 0).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep the daemon's data (sled store, checkpoints) here instead of a temporary folder.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Devices for the demo's daemon, as in caudad.toml (default: one CPU slot per core).
    #[arg(long, value_delimiter = ',')]
    devices: Option<Vec<String>>,
}

pub fn run(args: DemoArgs, engine: Engine) -> anyhow::Result<()> {
    let temp = match &args.data_dir {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("creating a temporary data folder")?),
    };
    let data_dir = match (&args.data_dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => bail!("no data folder"),
    };
    let config = DaemonConfig {
        listen: "127.0.0.1:0".parse()?,
        data_dir,
        devices: args.devices.clone(),
        ..DaemonConfig::default()
    };
    let spec = DEMO.replacen("[train]\n", &format!("[train]\nseed = {}\n", args.seed), 1);
    // The workers are this binary, so they build the same engine.
    let program = std::env::current_exe().context("locating the daemon's own binary")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let node = Node::start(&config, std::path::Path::new("<demo>"), program, engine).await?;
        let addr = node.addr;
        let slots = node.daemon.devices()?.len();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(node.serve(async {
            let _ = stopped.await;
        }));
        // Ctrl-C stops the workers (they lead their own process groups) before exiting.
        let report = tokio::select! {
            r = drive(addr, &spec, args.seed, slots) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        let _ = stop.send(());
        server.await.context("the daemon task")??;
        report
    })?;
    drop(temp);
    Ok(())
}

/// Submits the demo over gRPC, follows it, prints the report.
async fn drive(
    addr: std::net::SocketAddr,
    spec: &str,
    seed: u64,
    slots: usize,
) -> anyhow::Result<()> {
    let mut client = CaudaClient::connect(format!("http://{addr}"))
        .await
        .with_context(|| format!("connecting to the demo daemon at {addr}"))?;
    let submitted = client
        .submit_experiment(v1::SubmitExperimentRequest {
            spec_toml: spec.to_string(),
            source_name: Some("examples/digits-demo.toml".into()),
            user: Some("demo".into()),
            ..Default::default()
        })
        .await?
        .into_inner();
    let total = submitted.runs.len();
    println!(
        "cauda demo: caudad on {addr} ({slots} device slots), experiment e-{}: {total} methods on the embedded digits, long-tailed (exp, ratio 50), LeNet, seed {seed}",
        submitted.experiment_id
    );
    let started = Instant::now();
    let mut reported = std::collections::BTreeSet::new();
    let runs = loop {
        let page = client
            .list_runs(v1::ListRunsRequest {
                experiment_id: Some(submitted.experiment_id),
                page_size: 1000,
                view: v1::RunView::Full.into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        for run in &page.runs {
            if is_terminal(run.state()) && reported.insert(run.run_id) {
                println!(
                    "  [{:>2}/{total}] r-{} {} {:?} after {:.0} s",
                    reported.len(),
                    run.run_id,
                    run.name,
                    run.state(),
                    started.elapsed().as_secs_f32()
                );
            }
        }
        if page.runs.iter().all(|r| is_terminal(r.state())) {
            break page.runs;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let report = client
        .get_report(v1::GetReportRequest {
            experiment_id: submitted.experiment_id,
        })
        .await
        .context("asking the demo daemon for the report")?
        .into_inner();
    println!();
    print!("{}", cauda_report::table_text(&report));
    let failed = runs
        .iter()
        .filter(|r| r.state() != v1::RunState::Succeeded)
        .count();
    println!();
    println!("many: > 100 training images, medium: 20 to 100, few: < 20 (class counts 143 ... 2).");
    if failed > 0 {
        for run in runs.iter().filter(|r| r.state() != v1::RunState::Succeeded) {
            eprintln!(
                "r-{} {}: {}",
                run.run_id,
                run.name,
                run.error.as_deref().unwrap_or("-")
            );
        }
        bail!("{failed} of {total} runs did not succeed");
    }
    Ok(())
}

fn is_terminal(state: v1::RunState) -> bool {
    matches!(
        state,
        v1::RunState::Succeeded | v1::RunState::Failed | v1::RunState::Cancelled
    )
}
