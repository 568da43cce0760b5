//! The checks of `[model]` that need more than a name lookup, and pretrained weights: pinning the
//! file's content (its SHA-256) into the run, which makes the weights part of the config hash,
//! as `data_section.rs` does for split files, and loading them into a fresh classifier.

use super::{ModelSection, Result, invalid};
use crate::models::{Classifier, ModelError, PretrainedError, load_pretrained, read_pretrained};

impl ModelSection {
    /// Checks `pretrained` and `pretrained_sha256`; `origin` names the spec.
    pub(super) fn check(&self, origin: &str) -> Result<()> {
        if let Some(path) = &self.pretrained
            && path.as_os_str().is_empty()
        {
            return Err(invalid(origin, "model.pretrained", "an empty path"));
        }
        if self.pretrained.is_none() && self.pretrained_sha256.is_some() {
            return Err(invalid(
                origin,
                "model.pretrained_sha256",
                "pins a pretrained file; set model.pretrained too",
            ));
        }
        if let Some(h) = &self.pretrained_sha256
            && !super::is_sha256_hex(h)
        {
            return Err(invalid(
                origin,
                "model.pretrained_sha256",
                format!("`{h}`; allowed: 64 lowercase hex digits (the file's SHA-256)"),
            ));
        }
        Ok(())
    }

    /// Reads the pretrained file and records its SHA-256 in `pretrained_sha256`; a hash given in
    /// the spec must be the file's. Called at submission after the path passed the data roots,
    /// and by `caudad train`. No pretrained file: no-op.
    pub fn pin_pretrained(&mut self) -> std::result::Result<(), PretrainedError> {
        let Some(path) = &self.pretrained else {
            return Ok(());
        };
        let (_, sha256) = read_pretrained(path)?;
        if let Some(pinned) = &self.pretrained_sha256
            && *pinned != sha256
        {
            return Err(PretrainedError::Changed {
                path: path.clone(),
                actual: sha256,
                pinned: pinned.clone(),
            });
        }
        self.pretrained_sha256 = Some(sha256);
        Ok(())
    }

    /// `model` with the pretrained weights in its backbone, when the section names a file
    /// (checked against `pretrained_sha256` when pinned); `model` itself otherwise.
    pub fn load_pretrained(
        &self,
        model: Classifier,
    ) -> std::result::Result<Classifier, ModelError> {
        let Some(path) = &self.pretrained else {
            return Ok(model);
        };
        let (model, report) = load_pretrained(
            model,
            &self.backbone,
            path,
            self.pretrained_sha256.as_deref(),
        )?;
        tracing::info!(
            path = %path.display(),
            sha256 = %report.sha256,
            loaded = report.loaded,
            ignored = ?report.ignored,
            "pretrained backbone loaded"
        );
        Ok(model)
    }
}
