//! `caudad train`: parse and resolve a spec, prepare its split, train, and print one JSON line
//! per epoch and a final summary line; optionally write checkpoints, the split and the summary.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use cauda_plugins::spec::ExperimentSpec;
use cauda_plugins::train::{self, Checkpoint, EpochRecord, EventSink, TrainError};

use crate::engine::Engine;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// The experiment spec (TOML, without [sweep]).
    spec: PathBuf,
    /// Folder for `checkpoint.bin`, `split.json`, `summary.json` and `config.json`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Resume from this checkpoint file.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Folder of user presets (`*.toml`) besides the engine's.
    #[arg(long)]
    presets: Option<PathBuf>,
    /// Stop after writing split.json (no training): for `bench/reference.py`.
    #[arg(long)]
    split_only: bool,
    /// Write the lockstep record of the run's first steps to this folder (initial weights,
    /// each step's batch, learning rate, loss and weights after the step, and the final
    /// evaluation), for `bench/lockstep.py` to replay in PyTorch.
    #[arg(long)]
    lockstep: Option<PathBuf>,
    /// Steps recorded per stage with --lockstep, from each stage's start (0 = every step).
    #[arg(long, default_value_t = 8)]
    lockstep_steps: usize,
    /// With --lockstep: also record every later step's draws (image indices, crops, labels,
    /// mixing targets, loss; no pixels or weights): a whole run in a few MB, for
    /// `bench/replay_draws.py`.
    #[arg(long, requires = "lockstep")]
    lockstep_draws: bool,
}

struct Stdout {
    out: Option<PathBuf>,
}

impl EventSink for Stdout {
    fn on_epoch(&mut self, record: &EpochRecord) -> Result<(), TrainError> {
        let line = serde_json::to_string(record).map_err(|e| TrainError::Sink(e.to_string()))?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")
            .and_then(|_| stdout.flush())
            .map_err(|e| TrainError::Sink(e.to_string()))
    }

    fn on_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), TrainError> {
        if let Some(dir) = &self.out {
            let path = dir.join("checkpoint.bin");
            let tmp = dir.join("checkpoint.bin.tmp");
            std::fs::write(&tmp, checkpoint.to_bytes())
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(|e| TrainError::Sink(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }
}

pub fn run(args: TrainArgs, engine: &Engine) -> anyhow::Result<()> {
    let origin = args.spec.display().to_string();
    let text = std::fs::read_to_string(&args.spec).with_context(|| format!("reading {origin}"))?;
    let spec = ExperimentSpec::parse(&origin, &text)?;
    if !spec.sweep.is_empty() {
        bail!(
            "{origin}: [sweep] makes a grid of runs; submit it to the daemon, or remove [sweep] to train one run"
        );
    }
    let mut presets = engine.presets().clone();
    if let Some(dir) = &args.presets {
        presets.load_dir(dir)?;
    }
    let registry = engine.registry();
    let mut run = spec.resolve(&origin, &presets, registry)?;
    // The split file's and pretrained weights' contents are part of the run's identity, as the
    // daemon pins them.
    run.data.pin_split_file()?;
    run.model.pin_pretrained()?;
    let data = train::prepare(&run.data)?;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let split = serde_json::to_vec(&data.split_file(&run.data))?;
        std::fs::write(dir.join("split.json"), split)?;
        std::fs::write(dir.join("config.json"), run.to_json())?;
    }
    if args.split_only {
        return Ok(());
    }
    let resume = match &args.resume {
        Some(p) => Some(Checkpoint::from_bytes(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )?),
        None => None,
    };
    // The spec's backend, else flex on the CPU or the first GPU backend built in on a GPU
    // (`[resources] gpus` / `gpu_share`), as a daemon without `[backends]` would choose.
    let (backend, devices) = train::run_devices(&run.resources, None)?;
    eprintln!(
        "backend {backend} on {:?} ({} device{})",
        train::Placement::of(&run.resources),
        devices.len(),
        if devices.len() == 1 {
            ""
        } else {
            "s, data-parallel"
        }
    );
    let mut sink = Stdout {
        out: args.out.clone(),
    };
    let lockstep = args.lockstep.clone().map(|dir| train::LockstepConfig {
        dir,
        steps: args.lockstep_steps,
        draws: args.lockstep_draws,
    });
    let summary = match (&lockstep, devices.as_slice()) {
        (Some(_), [_, _, ..]) => {
            anyhow::bail!("--lockstep records one device's steps: run it with resources.gpus <= 1")
        }
        (_, [device]) => train::train_recorded(
            &run,
            &data,
            registry,
            device,
            resume,
            &mut sink,
            lockstep.as_ref(),
        )?,
        _ => train::train_on(&run, &data, registry, &devices, resume, &mut sink)?,
    };
    let line = serde_json::to_string(&serde_json::json!({ "summary": summary }))?;
    println!("{line}");
    if let Some(dir) = &args.out {
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_vec_pretty(&summary)?,
        )?;
    }
    Ok(())
}
