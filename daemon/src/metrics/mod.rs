//! The Prometheus endpoint (`[metrics] listen` in `caudad.toml`): the daemon's metrics as
//! OpenMetrics text on `GET /metrics`. `families` holds the metric families and counts the
//! core's events (it is the core's `Recorder`); `server` serves them over HTTP, rendering the
//! state gauges from a `Daemon::snapshot` taken off the async runtime at each scrape.

mod families;
mod server;

pub use families::{CONTENT_TYPE, Metrics};
pub use server::{MetricsServer, bind};
