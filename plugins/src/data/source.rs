//! Where a run's images come from: one enum naming the format and its location, which the spec
//! layer deserialises (`format = "cifar"`, `path = "..."`) and which dispatches to the loader.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use super::synthetic::{self, SyntheticConfig};
use super::{DataError, Result, TrainTest, cifar, digits, folder, idx};

/// A data source: the format tag plus what that loader needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "format", rename_all = "lowercase")]
pub enum DataSource {
    /// MNIST-family IDX directory (see [`idx`]).
    Idx { path: PathBuf },
    /// CIFAR-10 / CIFAR-100 binary directory (see [`cifar`]).
    Cifar { path: PathBuf },
    /// `ROOT/{train,test}/<class>/*.png` tree (see [`folder`]); `cache_dir` defaults to ROOT.
    Folder {
        path: PathBuf,
        #[serde(default)]
        cache_dir: Option<PathBuf>,
    },
    /// The embedded scikit-learn digits (see [`digits`]).
    Digits,
    /// Seeded synthetic images (see [`synthetic`]).
    Synthetic(SyntheticConfig),
}

impl DataSource {
    /// Loads the train and test splits.
    pub fn load(&self) -> Result<TrainTest> {
        let tt = match self {
            Self::Idx { path } => idx::load_dir(path),
            Self::Cifar { path } => cifar::load_dir(path),
            Self::Folder { path, cache_dir } => folder::load_dir_with(path, cache_dir.as_deref()),
            Self::Digits => digits::load(),
            Self::Synthetic(cfg) => synthetic::generate(cfg),
        }?;
        tt.train.validate()?;
        tt.test.validate()?;
        Ok(tt)
    }

    pub fn format(&self) -> DataFormat {
        match self {
            Self::Idx { .. } => DataFormat::Idx,
            Self::Cifar { .. } => DataFormat::Cifar,
            Self::Folder { .. } => DataFormat::Folder,
            Self::Digits => DataFormat::Digits,
            Self::Synthetic(_) => DataFormat::Synthetic,
        }
    }
}

/// The format names, for callers that hold a name and a path rather than a [`DataSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    Idx,
    Cifar,
    Folder,
    Digits,
    Synthetic,
    /// Split files of `relative/path label` lines (ImageNet-LT, Places-LT; see `list_set`).
    List,
    /// iNaturalist 2018's JSON split files (see `list_set`).
    Inat,
}

impl DataFormat {
    pub const NAMES: [&'static str; 7] = [
        "idx",
        "cifar",
        "folder",
        "digits",
        "synthetic",
        "list",
        "inat",
    ];

    /// Formats whose splits are given by split files (`data.train_list`, ...).
    pub fn is_list(self) -> bool {
        matches!(self, Self::List | Self::Inat)
    }
}

impl FromStr for DataFormat {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "idx" => Self::Idx,
            "cifar" => Self::Cifar,
            "folder" => Self::Folder,
            "digits" => Self::Digits,
            "synthetic" => Self::Synthetic,
            "list" => Self::List,
            "inat" => Self::Inat,
            other => {
                return Err(DataError::Invalid(format!(
                    "format: unknown data format {other:?}, expected one of {:?}",
                    Self::NAMES
                )));
            }
        })
    }
}

/// Loads `format` from `path` (required by idx, cifar and folder; ignored by digits). The
/// synthetic format needs its configuration: use [`DataSource::Synthetic`].
pub fn load(format: DataFormat, path: Option<&Path>) -> Result<TrainTest> {
    let need_path = || {
        path.map(Path::to_path_buf).ok_or_else(|| {
            DataError::Invalid(format!(
                "path: the {format:?} format needs a data directory"
            ))
        })
    };
    let source = match format {
        DataFormat::Idx => DataSource::Idx { path: need_path()? },
        DataFormat::Cifar => DataSource::Cifar { path: need_path()? },
        DataFormat::Folder => DataSource::Folder {
            path: need_path()?,
            cache_dir: None,
        },
        DataFormat::Digits => DataSource::Digits,
        DataFormat::Synthetic => {
            return Err(DataError::Invalid(
                "format: synthetic data needs its configuration (DataSource::Synthetic)".into(),
            ));
        }
        DataFormat::List | DataFormat::Inat => {
            return Err(DataError::Invalid(
                "format: list and inat data need their split files (list_set::ListSource)".into(),
            ));
        }
    };
    source.load()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserialises_each_format() {
        let s: DataSource = toml::from_str("format = \"cifar\"\npath = \"/data/c10\"").unwrap();
        assert_eq!(
            s,
            DataSource::Cifar {
                path: "/data/c10".into()
            }
        );
        let s: DataSource = toml::from_str("format = \"digits\"").unwrap();
        assert_eq!(s.format(), DataFormat::Digits);
        let s: DataSource = toml::from_str(
            "format = \"synthetic\"\nnum_classes = 3\nper_class_train = 4\nper_class_test = 2",
        )
        .unwrap();
        let tt = s.load().unwrap();
        assert_eq!((tt.train.len(), tt.test.len()), (12, 6));
        let s: DataSource =
            toml::from_str("format = \"folder\"\npath = \"r\"\ncache_dir = \"c\"").unwrap();
        assert!(matches!(
            s,
            DataSource::Folder {
                cache_dir: Some(_),
                ..
            }
        ));
        assert!(toml::from_str::<DataSource>("format = \"hdf5\"").is_err());
        assert!(
            toml::from_str::<DataSource>(
                "format = \"synthetic\"\nnum_classes = 3\nper_class_train = 4\nper_class_test = 2\nbogus = 1"
            )
            .is_err()
        );
    }

    #[test]
    fn load_by_name() {
        let f: DataFormat = "digits".parse().unwrap();
        assert_eq!(
            load(f, None).unwrap().train.len() + load(f, None).unwrap().test.len(),
            1797
        );
        assert!(
            "hdf5"
                .parse::<DataFormat>()
                .unwrap_err()
                .to_string()
                .contains("cifar")
        );
        let err = load(DataFormat::Idx, None).unwrap_err().to_string();
        assert!(err.contains("path"), "{err}");
    }
}
