//! The network half of plotting: fetch an experiment's runs (ListRuns, FULL view, every page)
//! and, for the curves, each plotted run's epochs (GetMetrics), then hand them to
//! [`collect`](super::collect) for a [`Picture`].

use cauda_proto::v1::{GetExperimentRequest, GetMetricsRequest, ListRunsRequest, Run, RunView};

use super::{Picture, PlotError, collect};
use crate::connect::Client;
use crate::exit::CliError;
use crate::ids::experiment_label;

/// Which picture to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Kind {
    /// Per-class test accuracy against the class's training count (log axis, head left).
    #[default]
    PerClass,
    /// Test top-1 against epoch.
    Curves,
    /// The reliability diagram: accuracy against confidence, by confidence bin.
    Calibration,
    /// The final model's test confusion matrix as a heatmap (rows normalized), one per method
    /// and imbalance ratio with the seeds' counts summed.
    Confusion,
}

/// Every run of an experiment with its config and summary, in run-id order.
pub async fn experiment_runs(
    client: &mut Client,
    addr: &str,
    experiment_id: u64,
) -> Result<Vec<Run>, CliError> {
    let mut runs = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_runs(ListRunsRequest {
                experiment_id: Some(experiment_id),
                page_size: 1000,
                page_token: page_token.clone(),
                view: RunView::Full as i32,
                ..Default::default()
            })
            .await
            .map_err(|s| CliError::from_status(addr, s))?
            .into_inner();
        runs.extend(page.runs);
        if page.next_page_token.is_empty() {
            return Ok(runs);
        }
        if page.next_page_token == page_token {
            return Err(CliError::BadReply(
                "ListRuns returned the same page token twice".into(),
            ));
        }
        page_token = page.next_page_token;
    }
}

/// The data of one picture of an experiment. An unknown experiment is NOT_FOUND (exit 4); an
/// experiment with nothing to plot yet is a usage error naming why.
pub async fn gather(
    client: &mut Client,
    addr: &str,
    experiment_id: u64,
    kind: Kind,
) -> Result<Picture, CliError> {
    let experiment = client
        .get_experiment(GetExperimentRequest { experiment_id })
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner()
        .experiment
        .ok_or_else(|| CliError::BadReply("GetExperiment returned no experiment".into()))?;
    let title = format!("{} {}", experiment_label(experiment_id), experiment.name);
    let mut runs = experiment_runs(client, addr, experiment_id).await?;
    // Draw the grid points only (not stage-1 or reference runs), including the ones reused
    // from earlier experiments.
    if !experiment.point_run_ids.is_empty() {
        let mut points = Vec::with_capacity(experiment.point_run_ids.len());
        for id in &experiment.point_run_ids {
            match runs.iter().position(|r| r.run_id == *id) {
                Some(i) => points.push(runs[i].clone()),
                None => {
                    let run = client
                        .get_run(cauda_proto::v1::GetRunRequest { run_id: *id })
                        .await
                        .map_err(|s| CliError::from_status(addr, s))?
                        .into_inner()
                        .run;
                    points.extend(run);
                }
            }
        }
        runs = points;
    }
    let data = match kind {
        Kind::PerClass => collect::per_class(&title, &runs).map(Picture::Lines),
        Kind::Calibration => collect::calibration(&title, &runs).map(Picture::Lines),
        Kind::Confusion => collect::confusion(&title, &runs).map(Picture::Confusion),
        Kind::Curves => {
            let mut with_epochs = Vec::new();
            for run in runs {
                if collect::run_facts(&run).is_none() {
                    continue;
                }
                let epochs = client
                    .get_metrics(GetMetricsRequest { run_id: run.run_id })
                    .await
                    .map_err(|s| CliError::from_status(addr, s))?
                    .into_inner()
                    .epochs;
                with_epochs.push((run, epochs));
            }
            collect::curves(&title, &with_epochs).map(Picture::Lines)
        }
    };
    data.map_err(plot_error)
}

/// A plotting failure as a CLI error: nothing to plot is a usage error (exit 2), a drawing or
/// encoding failure a broken reply (exit 6).
pub fn plot_error(err: PlotError) -> CliError {
    match err {
        PlotError::Empty(_) => CliError::Usage(err.to_string()),
        PlotError::Font | PlotError::Draw(_) | PlotError::Encode(_) => {
            CliError::BadReply(err.to_string())
        }
    }
}
