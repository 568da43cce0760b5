//! Which per-channel mean and standard deviation a run normalizes its images with (the spec's
//! `data.normalize`): fitted on the run's own training split (cauda's default), or fixed
//! constants so a run normalizes as the field's published code does.
//!
//! The CIFAR constants are those of Cao et al.'s `cifar_train.py` (kaidic/LDAM-DRW), reused by
//! BBN, RIDE, SADE, Balanced Softmax and logit adjustment: CIFAR-10 mean (0.4914, 0.4822,
//! 0.4465), std (0.2023, 0.1994, 0.2010). That script normalizes CIFAR-100 with the CIFAR-10
//! constants too, so reproducing it means `normalize = "cifar10"` for both; `"cifar100"` gives
//! the CIFAR-100 training set's own statistics (0.5071, 0.4865, 0.4409) / (0.2673, 0.2564,
//! 0.2762).

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// CIFAR-10 mean and std as in Cao et al.'s `cifar_train.py`.
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
pub const CIFAR10_STD: [f32; 3] = [0.2023, 0.1994, 0.2010];
/// CIFAR-100 training-set mean and std (as commonly published).
pub const CIFAR100_MEAN: [f32; 3] = [0.5071, 0.4865, 0.4409];
pub const CIFAR100_STD: [f32; 3] = [0.2673, 0.2564, 0.2762];

/// Largest number of channels a fixed normalization may list.
pub const MAX_CHANNELS: usize = 64;

/// `data.normalize`: `"fit"`, `"cifar10"`, `"cifar100"` or `{ mean = [...], std = [...] }`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Normalization {
    /// Mean and population std of the run's training split (scaled to [0, 1]).
    #[default]
    Fit,
    Cifar10,
    Cifar100,
    /// Given constants, one per channel.
    Fixed {
        mean: Vec<f32>,
        std: Vec<f32>,
    },
}

/// The table form of a fixed normalization.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixedTable {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalization {
    /// The accepted values, for error messages.
    pub const ALLOWED: &'static str =
        "\"fit\", \"cifar10\", \"cifar100\" or { mean = [...], std = [...] }";

    pub fn is_fit(&self) -> bool {
        *self == Self::Fit
    }

    /// The constants of a fixed normalization; `None` for `fit`.
    pub fn constants(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        match self {
            Self::Fit => None,
            Self::Cifar10 => Some((CIFAR10_MEAN.to_vec(), CIFAR10_STD.to_vec())),
            Self::Cifar100 => Some((CIFAR100_MEAN.to_vec(), CIFAR100_STD.to_vec())),
            Self::Fixed { mean, std } => Some((mean.clone(), std.clone())),
        }
    }

    /// Checks the constants: finite means, finite stds `> 0`, as many of each as `channels`
    /// (when the data's channel count is known). The message says what is allowed.
    pub fn check(&self, channels: Option<usize>) -> Result<(), String> {
        let Some((mean, std)) = self.constants() else {
            return Ok(());
        };
        if mean.len() != std.len() || mean.is_empty() || mean.len() > MAX_CHANNELS {
            return Err(format!(
                "mean has {} values and std {}; give one of each per channel (1 ..= {MAX_CHANNELS})",
                mean.len(),
                std.len()
            ));
        }
        if let Some(c) = channels
            && c != mean.len()
        {
            return Err(format!(
                "{} channel(s) given, but the data has {c}; allowed: {c} mean and {c} std values",
                mean.len()
            ));
        }
        if let Some((i, m)) = mean.iter().enumerate().find(|(_, m)| !m.is_finite()) {
            return Err(format!("mean[{i}] = {m} is not finite"));
        }
        if let Some((i, s)) = std
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0))
        {
            return Err(format!("std[{i}] = {s}; allowed: finite and > 0"));
        }
        Ok(())
    }
}

impl Serialize for Normalization {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Fit => s.serialize_str("fit"),
            Self::Cifar10 => s.serialize_str("cifar10"),
            Self::Cifar100 => s.serialize_str("cifar100"),
            Self::Fixed { mean, std } => FixedTable {
                mean: mean.clone(),
                std: std.clone(),
            }
            .serialize(s),
        }
    }
}

struct NormalizationVisitor;

impl<'de> Visitor<'de> for NormalizationVisitor {
    type Value = Normalization;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(Normalization::ALLOWED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Normalization, E> {
        match v {
            "fit" => Ok(Normalization::Fit),
            "cifar10" => Ok(Normalization::Cifar10),
            "cifar100" => Ok(Normalization::Cifar100),
            other => Err(E::custom(format!(
                "unknown normalize `{other}`; allowed: {}",
                Normalization::ALLOWED
            ))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Normalization, A::Error> {
        let t = FixedTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Normalization::Fixed {
            mean: t.mean,
            std: t.std,
        })
    }
}

impl<'de> Deserialize<'de> for Normalization {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NormalizationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize)]
    struct Wrap {
        normalize: Normalization,
    }

    fn parse(text: &str) -> Result<Normalization, String> {
        toml::from_str::<Wrap>(text)
            .map(|w| w.normalize)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn names_and_tables_parse_and_round_trip_through_json() {
        assert_eq!(parse("normalize = \"fit\"").unwrap(), Normalization::Fit);
        assert_eq!(
            parse("normalize = \"cifar10\"").unwrap(),
            Normalization::Cifar10
        );
        assert_eq!(
            parse("normalize = { mean = [0.5], std = [0.25] }").unwrap(),
            Normalization::Fixed {
                mean: vec![0.5],
                std: vec![0.25]
            }
        );
        for n in [
            Normalization::Fit,
            Normalization::Cifar100,
            Normalization::Fixed {
                mean: vec![0.1, 0.2],
                std: vec![0.3, 0.4],
            },
        ] {
            let json = serde_json::to_string(&Wrap {
                normalize: n.clone(),
            })
            .unwrap();
            let back: Wrap = serde_json::from_str(&json).unwrap();
            assert_eq!(back.normalize, n, "{json}");
        }
    }

    #[test]
    fn unknown_names_and_keys_are_errors_that_say_what_is_allowed() {
        let err = parse("normalize = \"imagenet\"").unwrap_err();
        assert!(
            err.contains("unknown normalize `imagenet`") && err.contains("cifar100"),
            "{err}"
        );
        let err = parse("normalize = { mean = [0.5], std = [0.2], var = [1] }").unwrap_err();
        assert!(err.contains("var"), "{err}");
        assert!(parse("normalize = 3").unwrap_err().contains("\"fit\""));
    }

    #[test]
    fn check_wants_one_finite_positive_pair_per_channel() {
        assert!(Normalization::Fit.check(Some(1)).is_ok());
        assert!(Normalization::Cifar10.check(Some(3)).is_ok());
        let err = Normalization::Cifar10.check(Some(1)).unwrap_err();
        assert!(
            err.contains("3 channel(s) given, but the data has 1"),
            "{err}"
        );
        let fixed = |mean: Vec<f32>, std: Vec<f32>| Normalization::Fixed { mean, std };
        assert!(
            fixed(vec![0.5], vec![0.0])
                .check(None)
                .unwrap_err()
                .contains("std[0]")
        );
        assert!(
            fixed(vec![f32::NAN], vec![1.0])
                .check(None)
                .unwrap_err()
                .contains("mean[0]")
        );
        assert!(fixed(vec![0.5, 0.5], vec![1.0]).check(None).is_err());
        assert!(fixed(vec![], vec![]).check(None).is_err());
    }

    #[test]
    fn cao_constants_are_the_published_ones() {
        assert_eq!(
            Normalization::Cifar10.constants().unwrap().1,
            [0.2023, 0.1994, 0.2010]
        );
        assert_eq!(
            Normalization::Cifar100.constants().unwrap().0,
            [0.5071, 0.4865, 0.4409]
        );
    }
}
