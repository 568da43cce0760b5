//! Method presets: named compositions of plugins that reproduce a paper's method (`ldam-drw` =
//! LDAM loss + DRW + cosine classifier). The built-in ones are TOML files in `plugins/presets/`
//! embedded in the binary; users add their own as TOML files of the same shape.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{
    AugmentSection, EvaluationSection, ModuleSection, RebalanceSection, Result, SpecError,
    Subfamily,
};

/// One method preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub name: String,
    #[serde(default)]
    pub doc: String,
    #[serde(default)]
    pub paper: String,
    /// Where it sits in the survey's taxonomy (every built-in preset says; optional for users').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Subfamily>,
    #[serde(default)]
    pub rebalance: RebalanceSection,
    #[serde(default)]
    pub augment: AugmentSection,
    #[serde(default)]
    pub module: ModuleSection,
    #[serde(default, skip_serializing_if = "EvaluationSection::is_default")]
    pub evaluation: EvaluationSection,
}

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/presets/", $name, ".toml")))),*]
    };
}

/// The built-in presets, by name.
const BUILTIN: &[(&str, &str)] = builtin!(
    "ce",
    "focal",
    "cb-focal",
    "cb-softmax",
    "weighted-ce",
    "cosine-classifier",
    "ldam-drw",
    "ce-drw",
    "balanced-softmax",
    "logit-adjust",
    "logit-adjust-posthoc",
    "vs-loss",
    "lade",
    "gcl",
    "influence-balanced",
    "cb-sampling",
    "sqrt-sampling",
    "pb-sampling",
    "mixup",
    "cutmix",
    "cmo",
    "remix",
    "crt",
    "lws",
    "tau-norm",
    "ncm",
    "knn",
    "weight-balancing",
    "mislas",
    "disalign",
    "ride",
    "bbn",
    "sade",
    "kd",
    "kd-balanced-softmax",
    "bcl",
);

/// All presets a run may name.
#[derive(Debug, Clone)]
pub struct PresetBook {
    presets: BTreeMap<String, Preset>,
}

impl Default for PresetBook {
    fn default() -> Self {
        Self::builtin()
    }
}

impl PresetBook {
    /// The built-in presets only.
    pub fn builtin() -> Self {
        let mut presets = BTreeMap::new();
        for (name, text) in BUILTIN {
            // The embedded files are tested; a broken one is a build defect, caught by tests.
            let p = Preset::parse(&format!("preset {name}"), text)
                .unwrap_or_else(|e| panic!("built-in preset {name} is invalid: {e}"));
            presets.insert(p.name.clone(), p);
        }
        Self { presets }
    }

    pub fn get(&self, name: &str) -> Option<&Preset> {
        self.presets.get(name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.presets.keys().map(String::as_str).collect()
    }

    pub fn all(&self) -> impl Iterator<Item = &Preset> {
        self.presets.values()
    }

    /// Adds a user preset; a name that is already taken is an error.
    pub fn add(&mut self, origin: &str, preset: Preset) -> Result<()> {
        if self.presets.contains_key(&preset.name) {
            return Err(super::invalid(
                origin,
                "name",
                format!("preset `{}` already exists", preset.name),
            ));
        }
        self.presets.insert(preset.name.clone(), preset);
        Ok(())
    }

    /// Adds every `*.toml` preset of a folder (sorted by file name).
    pub fn load_dir(&mut self, dir: &Path) -> Result<()> {
        let io = |e: std::io::Error| SpecError::Parse {
            origin: dir.display().to_string(),
            message: e.to_string(),
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let origin = path.display().to_string();
            // Refused before reading when larger than a spec may be (the parser checks again).
            let size = std::fs::metadata(&path).map_err(io)?.len();
            if size > super::MAX_SPEC_BYTES as u64 {
                return Err(SpecError::TooLarge {
                    origin,
                    size: usize::try_from(size).unwrap_or(usize::MAX),
                    limit: super::MAX_SPEC_BYTES,
                });
            }
            let text = std::fs::read_to_string(&path).map_err(io)?;
            self.add(&origin, Preset::parse(&origin, &text)?)?;
        }
        Ok(())
    }
}

impl Preset {
    /// Parses a preset file; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self> {
        let p: Preset = super::parse_bounded(origin, text)?;
        if p.name.is_empty()
            || !p
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(super::invalid(
                origin,
                "name",
                "a preset name is non-empty ASCII letters, digits, `-`, `_` or `.`",
            ));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_preset_parses_and_names_its_paper() {
        let book = PresetBook::builtin();
        assert_eq!(book.names().len(), BUILTIN.len());
        for p in book.all() {
            assert!(!p.doc.is_empty() && !p.paper.is_empty(), "{}", p.name);
            assert!(p.family.is_some(), "{} names no survey sub-family", p.name);
        }
    }

    #[test]
    fn a_user_preset_cannot_shadow_a_builtin() {
        let mut book = PresetBook::builtin();
        let p = Preset::parse("mine.toml", "name = \"ce\"\n").unwrap();
        assert!(
            book.add("mine.toml", p)
                .unwrap_err()
                .to_string()
                .contains("already exists")
        );
    }

    #[test]
    fn preset_parse_errors_name_the_line() {
        let err = Preset::parse("bad.toml", "name = \"x\"\n[rebalance]\nloss = 3\n").unwrap_err();
        let err = err.to_string();
        assert!(err.contains("bad.toml: rebalance.loss: line 3"), "{err}");
    }
}
