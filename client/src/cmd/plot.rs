//! `cauda plot EXPERIMENT --out FILE [--kind per-class|curves|calibration|confusion]`: draws an
//! experiment's per-class accuracy, its accuracy-vs-epoch curves, its reliability diagram or its
//! confusion matrices as SVG or PNG, chosen by the file's extension, and writes it atomically.

use std::path::{Path, PathBuf};

use crate::connect::connect;
use crate::exit::CliError;
use crate::ids::parse_experiment_id;
use crate::plot::Format;
use crate::plot::gather::{Kind, gather, plot_error};

/// Arguments of `cauda plot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment (`e-3` or `3`).
    #[arg(value_parser = parse_experiment_id)]
    pub experiment: u64,
    /// The file to write; `.svg` or `.png`.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Which picture: per-class accuracy against training count (head classes left), test
    /// top-1 against epoch, the reliability diagram, or the final model's test confusion matrix
    /// (one heatmap per method and imbalance ratio, seeds summed, each true class's row
    /// normalized to sum to 1; engine runs of at most 1000 classes store one, command runs none).
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
    let picture = gather(&mut client, addr, args.experiment, args.kind).await?;
    let bytes = match format {
        Format::Svg => picture.svg().map(String::into_bytes),
        Format::Png => picture.png(),
    }
    .map_err(plot_error)?;
    write_atomically(&args.out, &bytes)?;
    super::emit(&format!(
        "wrote {} ({})\n",
        args.out.display(),
        picture.describe()
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
