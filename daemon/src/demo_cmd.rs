//! `caudad demo`: the main job on the embedded defaults. It expands the demo study
//! (`examples/digits-demo.toml`, embedded), trains every method on the long-tailed digits and
//! prints the survey-style report: overall, many-, medium- and few-shot top-1 per method.

use std::time::Instant;

use anyhow::Context;
use cauda_plugins::registry::builtin_registry;
use cauda_plugins::spec::{ExperimentSpec, PresetBook, expand_sweep};
use cauda_plugins::train::{self, Checkpoint, EpochRecord, EventSink, TrainError};

const DEMO: &str = include_str!("../../examples/digits-demo.toml");

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Train with this seed (default 0).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

struct Quiet;

impl EventSink for Quiet {
    fn on_epoch(&mut self, _: &EpochRecord) -> Result<(), TrainError> {
        Ok(())
    }
    fn on_checkpoint(&mut self, _: &Checkpoint) -> Result<(), TrainError> {
        Ok(())
    }
}

fn pct(v: Option<f32>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.1}", v * 100.0))
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let origin = "examples/digits-demo.toml";
    let mut spec = ExperimentSpec::parse(origin, DEMO)?;
    spec.train.seed = args.seed;
    let runs = expand_sweep(origin, &spec)?;
    let presets = PresetBook::builtin();
    let registry = builtin_registry();
    let device = burn::tensor::Device::default();
    println!(
        "cauda demo: {} methods on the embedded digits, long-tailed (exp, ratio 50), LeNet, seed {}",
        runs.len(),
        args.seed
    );
    println!();
    println!("| method | top-1 | many | medium | few | seconds |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in runs {
        let resolved = r.resolve(origin, &presets, &registry)?;
        let data = train::prepare(&resolved.data).context("preparing the digits split")?;
        let started = Instant::now();
        let s = train::train(&resolved, &data, &registry, &device, None, &mut Quiet)?;
        println!(
            "| {} | {} | {} | {} | {} | {:.1} |",
            resolved.method,
            pct(Some(s.last.test_top1)),
            pct(s.last.many),
            pct(s.last.medium),
            pct(s.last.few),
            started.elapsed().as_secs_f32()
        );
    }
    println!();
    println!("many: > 100 training images, medium: 20 to 100, few: < 20 (class counts 143 ... 2).");
    Ok(())
}
