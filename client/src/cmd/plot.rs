//! `cauda plot EXPERIMENT --out FILE [--kind per-class|curves]`: draws an experiment's
//! per-class accuracy (or its accuracy-vs-epoch curves) as SVG or PNG, chosen by the file's
//! extension, and writes it atomically.

use std::path::{Path, PathBuf};

use crate::connect::connect;
use crate::exit::CliError;
use crate::ids::parse_experiment_id;
use crate::plot::gather::{Kind, gather, plot_error};
use crate::plot::{self, Format};

/// Arguments of `cauda plot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment (`e-3` or `3`).
    #[arg(value_parser = parse_experiment_id)]
    pub experiment: u64,
    /// The file to write; `.svg` or `.png`.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Which picture: per-class accuracy against training count (head classes left), or test
    /// top-1 against epoch.
    #[arg(long, value_enum, default_value_t = Kind::PerClass)]
    pub kind: Kind,
}

/// Runs `cauda plot`.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let format = Format::from_path(&args.out).ok_or_else(|| {
        CliError::Usage(format!(
            "{}: the output must end in .svg or .png",
            args.out.display()
        ))
    })?;
    let mut client = connect(addr).await?;
    let data = gather(&mut client, addr, args.experiment, args.kind).await?;
    let bytes = match format {
        Format::Svg => plot::svg(&data).map(String::into_bytes),
        Format::Png => plot::png(&data),
    }
    .map_err(plot_error)?;
    write_atomically(&args.out, &bytes)?;
    let series: usize = data.panels.iter().map(|p| p.series.len()).sum();
    super::emit(&format!(
        "wrote {} ({} panel(s), {series} line(s))\n",
        args.out.display(),
        data.panels.len()
    ))
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| CliError::Io { path: p, source }
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}
