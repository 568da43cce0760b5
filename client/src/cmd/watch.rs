//! `cauda watch RUN`: follows a run's event stream (WatchRun) with a progress bar over its
//! epochs, printing state changes and log lines above the bar, and ends with the final metrics.

use cauda_proto::v1::{GetMetricsRequest, RunState, WatchRunRequest, run_event};
use indicatif::{ProgressBar, ProgressStyle};

use crate::connect::{connect, fetch_run};
use crate::exit::CliError;
use crate::ids::{parse_run_id, run_label};
use crate::output::{epoch_text, log_line_text, state_change_text, state_name};

/// Arguments of `cauda watch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run (`r-12` or `12`).
    #[arg(value_parser = parse_run_id)]
    pub run: u64,
}

/// Runs `cauda watch`; exits 1 when the run ends failed or cancelled.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let status = |s| CliError::from_status(addr, s);
    let mut client = connect(addr).await?;
    let run = fetch_run(&mut client, addr, args.run).await?;
    let bar = ProgressBar::new(u64::from(run.epochs_total.max(1)));
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{bar:30}] epoch {pos}/{len} {msg} ({elapsed})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(run_label(run.run_id));
    bar.set_message(state_name(run.state));
    let mut stream = client
        .watch_run(WatchRunRequest {
            run_id: args.run,
            from_seq: 0,
            kinds: vec![],
            replay_only: false,
        })
        .await
        .map_err(status)?
        .into_inner();
    while let Some(event) = stream.message().await.map_err(status)? {
        match event.event {
            Some(run_event::Event::State(change)) => {
                bar.println(format!(
                    "[attempt {}] {}",
                    event.attempt,
                    state_change_text(&change)
                ));
            }
            Some(run_event::Event::Epoch(epoch)) => {
                bar.set_position(u64::from(epoch.epoch));
                bar.set_message(epoch_text(&epoch));
            }
            Some(run_event::Event::Log(line)) => bar.println(log_line_text(&line)),
            None => {}
        }
    }
    bar.finish();
    let final_run = fetch_run(&mut client, addr, args.run).await?;
    let metrics = client
        .get_metrics(GetMetricsRequest { run_id: args.run })
        .await
        .map_err(status)?
        .into_inner();
    let mut text = format!(
        "{}: {}\n",
        run_label(final_run.run_id),
        state_name(final_run.state)
    );
    if let Some(last) = metrics.epochs.iter().rev().find(|e| e.eval.is_some()) {
        text.push_str(&format!(
            "final (epoch {}): {}\n",
            last.epoch,
            epoch_text(last)
        ));
    }
    if let Some(error) = &final_run.error {
        text.push_str(&format!("error: {error}\n"));
    }
    super::emit(&text)?;
    if final_run.state == RunState::Succeeded as i32 {
        Ok(())
    } else {
        Err(CliError::RunsFailed(format!(
            "{} ended {}",
            run_label(final_run.run_id),
            state_name(final_run.state)
        )))
    }
}
