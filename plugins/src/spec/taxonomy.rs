//! The survey's taxonomy of long-tailed methods (Zhang et al., "Deep Long-Tailed Learning: A
//! Survey", TPAMI 2023, Sec. 3 and Fig. 2): three families and their sub-families. Every
//! built-in preset names its sub-family, so `cauda plugins` can show which parts of the field
//! cauda covers.

use serde::{Deserialize, Serialize};

/// A sub-family of the survey's taxonomy (plus the plain baseline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subfamily {
    /// Softmax cross-entropy on the long-tailed data: what every method is compared with.
    Baseline,
    /// Class re-balancing, Sec. 3.1.1: re-sampling.
    ReSampling,
    /// Class re-balancing, Sec. 3.1.2: class-sensitive learning (re-weighting, re-margining).
    ClassSensitiveLearning,
    /// Class re-balancing, Sec. 3.1.3: logit adjustment.
    LogitAdjustment,
    /// Information augmentation, Sec. 3.2.1: transfer learning (pre-training, distillation).
    TransferLearning,
    /// Information augmentation, Sec. 3.2.2: data augmentation.
    DataAugmentation,
    /// Module improvement, Sec. 3.3.1: representation learning.
    RepresentationLearning,
    /// Module improvement, Sec. 3.3.2: classifier design.
    ClassifierDesign,
    /// Module improvement, Sec. 3.3.3: decoupled training.
    DecoupledTraining,
    /// Module improvement, Sec. 3.3.4: ensemble learning.
    EnsembleLearning,
}

impl Subfamily {
    /// Every sub-family, in the survey's order.
    pub const ALL: [Subfamily; 10] = [
        Subfamily::Baseline,
        Subfamily::ReSampling,
        Subfamily::ClassSensitiveLearning,
        Subfamily::LogitAdjustment,
        Subfamily::TransferLearning,
        Subfamily::DataAugmentation,
        Subfamily::RepresentationLearning,
        Subfamily::ClassifierDesign,
        Subfamily::DecoupledTraining,
        Subfamily::EnsembleLearning,
    ];

    /// The name as written in presets (`class-sensitive-learning`).
    pub fn name(self) -> &'static str {
        match self {
            Subfamily::Baseline => "baseline",
            Subfamily::ReSampling => "re-sampling",
            Subfamily::ClassSensitiveLearning => "class-sensitive-learning",
            Subfamily::LogitAdjustment => "logit-adjustment",
            Subfamily::TransferLearning => "transfer-learning",
            Subfamily::DataAugmentation => "data-augmentation",
            Subfamily::RepresentationLearning => "representation-learning",
            Subfamily::ClassifierDesign => "classifier-design",
            Subfamily::DecoupledTraining => "decoupled-training",
            Subfamily::EnsembleLearning => "ensemble-learning",
        }
    }

    /// The survey family it belongs to.
    pub fn family(self) -> &'static str {
        match self {
            Subfamily::Baseline => "baseline",
            Subfamily::ReSampling
            | Subfamily::ClassSensitiveLearning
            | Subfamily::LogitAdjustment => "class-re-balancing",
            Subfamily::TransferLearning | Subfamily::DataAugmentation => "information-augmentation",
            Subfamily::RepresentationLearning
            | Subfamily::ClassifierDesign
            | Subfamily::DecoupledTraining
            | Subfamily::EnsembleLearning => "module-improvement",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde() {
        for s in Subfamily::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.name()));
            assert_eq!(serde_json::from_str::<Subfamily>(&json).unwrap(), s);
        }
    }
}
