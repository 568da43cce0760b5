//! PyTorch's name and layout for each tensor of a `Classifier`: one rule for both directions,
//! the safetensors export (`export/pytorch.rs`) and pretrained weights in (`pretrained.rs`), so
//! what cauda writes it also reads. A module walk tracks the path and the types of the modules
//! around each parameter; enum variants (`Backbone::LeNet`, `Block::Bottleneck`) leave no trace
//! in the path; BatchNorm's `gamma`/`beta` are PyTorch's `weight`/`bias`; a projection shortcut
//! (`shortcut`, torchvision's `downsample`) is an `nn.Sequential` in PyTorch (`.0` the conv,
//! `.1` the BatchNorm); a `Linear` weight is `[in, out]` in Burn and `[out, in]` in PyTorch.
//! The map is documented in `docs/EXPORT.md`.

/// Where a module walk is: the path of field names and the container types around it.
#[derive(Debug, Default)]
pub struct ModulePath {
    path: Vec<String>,
    containers: Vec<String>,
}

impl ModulePath {
    /// `ModuleVisitor::enter_module` / `ModuleMapper::enter_module`.
    pub fn enter(&mut self, name: &str, container_type: &str) {
        self.containers.push(container_type.to_string());
        if !container_type.starts_with("Enum:") {
            self.path.push(name.to_string());
        }
    }

    /// `ModuleVisitor::exit_module` / `ModuleMapper::exit_module`.
    pub fn exit(&mut self, container_type: &str) {
        self.containers.pop();
        if !container_type.starts_with("Enum:") {
            self.path.pop();
        }
    }

    /// The innermost user-defined module around the current position (`Struct:Linear`).
    fn module_type(&self) -> &str {
        self.containers
            .iter()
            .rev()
            .find(|c| c.starts_with("Struct:"))
            .map_or("", String::as_str)
    }

    /// PyTorch's name of the parameter at the current position; `None` at the root.
    pub fn torch_name(&self) -> Option<TorchName> {
        let (param, modules) = self.path.split_last()?;
        let module = self.module_type();
        let batch_norm = module == "Struct:BatchNorm";
        let param = match (batch_norm, param.as_str()) {
            (true, "gamma") => "weight",
            (true, "beta") => "bias",
            (_, p) => p,
        };
        let mut parts: Vec<&str> = Vec::with_capacity(modules.len() + 1);
        for (i, part) in modules.iter().enumerate() {
            let sequential = i > 0 && matches!(modules[i - 1].as_str(), "shortcut" | "downsample");
            parts.push(match (sequential, part.as_str()) {
                (true, "conv") => "0",
                (true, "bn") => "1",
                (_, p) => p,
            });
        }
        parts.push(param);
        Some(TorchName {
            name: parts.join("."),
            transposed: module == "Struct:Linear" && param == "weight",
            batch_norm_stat: batch_norm && matches!(param, "running_mean" | "running_var"),
        })
    }
}

/// One parameter's PyTorch name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchName {
    /// Dotted `state_dict` key (`backbone.layer1.0.downsample.1.running_var`).
    pub name: String,
    /// PyTorch stores this 2-d tensor transposed (`nn.Linear.weight` is `[out, in]`).
    pub transposed: bool,
    /// A BatchNorm running statistic, next to which PyTorch keeps `num_batches_tracked`.
    pub batch_norm_stat: bool,
}

impl TorchName {
    /// The `num_batches_tracked` key of this BatchNorm (for its `running_var`).
    pub fn batches_tracked(&self) -> Option<String> {
        self.name
            .strip_suffix(".running_var")
            .filter(|_| self.batch_norm_stat)
            .map(|prefix| format!("{prefix}.num_batches_tracked"))
    }
}
