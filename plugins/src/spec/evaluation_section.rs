//! `[evaluation]`: what a run does after its final evaluation. Its one key turns on SADE's
//! test-time self-supervised aggregation (Zhang et al., NeurIPS 2022), whose optimiser settings
//! are typed and range-checked here, so a worker never meets a setting it cannot run.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Result, invalid};

/// The spec key of the aggregation.
pub const AGGREGATION_KEY: &str = "evaluation.test_time_aggregation";

/// `[evaluation]` of a spec or preset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSection {
    /// `true` (the reference's settings), `false` (off, also against a preset that turns it
    /// on) or a table of settings; absent: the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_time_aggregation: Option<AggregationSwitch>,
}

impl EvaluationSection {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// `test_time_aggregation = false | true | { settings }`.
#[derive(Debug, Clone, PartialEq)]
pub enum AggregationSwitch {
    Off,
    On(TestTimeAggregation),
}

impl AggregationSwitch {
    /// The settings when on.
    pub fn settings(&self) -> Option<&TestTimeAggregation> {
        match self {
            Self::Off => None,
            Self::On(s) => Some(s),
        }
    }
}

/// SADE's test-time training of the experts' aggregation weights (Vanint/SADE-AgnosticLT
/// `test_training_cifar.py` with `configs/test_time_cifar100_ir100_sade.json`; the defaults are
/// its values): `w` (one per expert, `1/E` at first) learns by SGD on unlabeled test images to
/// make the prediction `softmax(sum_e softmax(w)_e z_e)` of two augmented views of an image agree
/// (`-cos`); after each epoch it stops when a weight, rounded to two decimals as the reference
/// rounds it, is below `min_weight`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestTimeAggregation {
    /// Epochs over each shifted test set (at most: see `min_weight`).
    pub epochs: usize,
    /// Images per step, in a shuffled order per epoch.
    pub batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    /// L2 on the raw weights `w`, as PyTorch's SGD adds it to the gradient.
    pub weight_decay: f64,
    /// The early stop: an expert's weight below this after an epoch ends the training.
    pub min_weight: f64,
}

impl Default for TestTimeAggregation {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: 128,
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            min_weight: 0.05,
        }
    }
}

impl TestTimeAggregation {
    /// Checks the ranges for a model of `experts` experts, naming the key; `origin` names the
    /// spec.
    pub fn check(&self, origin: &str, experts: usize) -> Result<()> {
        let bad =
            |key: &str, msg: String| Err(invalid(origin, format!("{AGGREGATION_KEY}.{key}"), msg));
        if !(1..=1000).contains(&self.epochs) {
            return bad(
                "epochs",
                format!("{} is out of range; allowed 1 ..= 1000", self.epochs),
            );
        }
        if !(1..=65_536).contains(&self.batch_size) {
            return bad(
                "batch_size",
                format!("{} is out of range; allowed 1 ..= 65536", self.batch_size),
            );
        }
        if !(self.lr > 0.0 && self.lr <= 100.0) {
            return bad(
                "lr",
                format!("{} is out of range; allowed 0 < lr <= 100", self.lr),
            );
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(
                "momentum",
                format!(
                    "{} is out of range; allowed 0 <= momentum < 1",
                    self.momentum
                ),
            );
        }
        if self.nesterov && self.momentum == 0.0 {
            return bad("nesterov", "Nesterov momentum needs momentum > 0".into());
        }
        if !(0.0..=1.0).contains(&self.weight_decay) {
            return bad(
                "weight_decay",
                format!("{} is out of range; allowed 0 ..= 1", self.weight_decay),
            );
        }
        let uniform = 1.0 / experts.max(1) as f64;
        if !(self.min_weight >= 0.0 && self.min_weight < uniform) {
            return bad(
                "min_weight",
                format!(
                    "{} is out of range; allowed 0 <= min_weight < 1/{experts} (the weights \
                     start at 1/{experts}; 0 never stops early)",
                    self.min_weight
                ),
            );
        }
        Ok(())
    }
}

impl Serialize for AggregationSwitch {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Off => s.serialize_bool(false),
            Self::On(settings) => settings.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for AggregationSwitch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Switch;
        impl<'de> Visitor<'de> for Switch {
            type Value = AggregationSwitch;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false or a table of settings (epochs, batch_size, lr, momentum, nesterov, weight_decay, min_weight)")
            }

            fn visit_bool<E: de::Error>(self, on: bool) -> std::result::Result<Self::Value, E> {
                Ok(if on {
                    AggregationSwitch::On(TestTimeAggregation::default())
                } else {
                    AggregationSwitch::Off
                })
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                // The struct's own deserializer: unknown keys are errors naming the allowed ones.
                TestTimeAggregation::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(AggregationSwitch::On)
            }
        }
        d.deserialize_any(Switch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<EvaluationSection, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn the_switch_reads_true_false_and_a_table_with_the_reference_defaults() {
        let on = parse("test_time_aggregation = true").unwrap();
        assert_eq!(
            on.test_time_aggregation,
            Some(AggregationSwitch::On(TestTimeAggregation::default()))
        );
        let off = parse("test_time_aggregation = false").unwrap();
        assert_eq!(off.test_time_aggregation, Some(AggregationSwitch::Off));
        let some = parse("test_time_aggregation = { epochs = 10, lr = 0.05 }").unwrap();
        let s = some
            .test_time_aggregation
            .clone()
            .unwrap()
            .settings()
            .cloned()
            .unwrap();
        assert_eq!((s.epochs, s.lr, s.batch_size), (10, 0.05, 128));
        assert!(s.nesterov && s.momentum == 0.9 && s.weight_decay == 5e-4);
        let err = parse("test_time_aggregation = { epoch = 10 }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `epoch`"), "{err}");
        let err = parse("test_time_aggregation = 3").unwrap_err().to_string();
        assert!(err.contains("true, false or a table"), "{err}");
        // Written back as it reads.
        let text = toml::to_string(&off).unwrap();
        assert_eq!(parse(&text).unwrap(), off);
        assert_eq!(parse(&toml::to_string(&some).unwrap()).unwrap(), some);
    }

    #[test]
    fn the_ranges_are_checked_naming_the_key() {
        let ok = TestTimeAggregation::default();
        ok.check("s.toml", 3).unwrap();
        let err =
            |t: TestTimeAggregation, experts| t.check("s.toml", experts).unwrap_err().to_string();
        let e = err(
            TestTimeAggregation {
                epochs: 0,
                ..ok.clone()
            },
            3,
        );
        assert!(e.contains("evaluation.test_time_aggregation.epochs"), "{e}");
        let e = err(
            TestTimeAggregation {
                lr: 0.0,
                ..ok.clone()
            },
            3,
        );
        assert!(e.contains(".lr: 0 is out of range"), "{e}");
        let e = err(
            TestTimeAggregation {
                momentum: 0.0,
                ..ok.clone()
            },
            3,
        );
        assert!(
            e.contains(".nesterov: Nesterov momentum needs momentum > 0"),
            "{e}"
        );
        let e = err(
            TestTimeAggregation {
                min_weight: 0.2,
                ..ok.clone()
            },
            8,
        );
        assert!(e.contains("min_weight < 1/8"), "{e}");
        TestTimeAggregation {
            min_weight: 0.2,
            ..ok
        }
        .check("s.toml", 3)
        .unwrap();
    }
}
