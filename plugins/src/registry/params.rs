//! Plugin parameters: references as written in specs (`"focal"` or `{ name = "focal",
//! gamma = 2 }`), parameter declarations with defaults and ranges, and validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::RegistryError;

/// A plugin as named in a spec or preset.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PluginRef {
    pub name: String,
    pub params: BTreeMap<String, toml::Value>,
}

impl PluginRef {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            params: BTreeMap::new(),
        }
    }
}

impl<'de> Deserialize<'de> for PluginRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Table(BTreeMap<String, toml::Value>),
        }
        match Raw::deserialize(d)? {
            Raw::Name(name) => Ok(Self::named(&name)),
            Raw::Table(mut t) => match t.remove("name") {
                Some(toml::Value::String(name)) => Ok(Self { name, params: t }),
                _ => Err(serde::de::Error::custom(
                    "a plugin is a name or a table with a `name` string and its parameters",
                )),
            },
        }
    }
}

impl Serialize for PluginRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = self.params.clone();
        t.insert("name".into(), toml::Value::String(self.name.clone()));
        t.serialize(s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    Float,
    Int,
}

/// One declared parameter.
#[derive(Debug, Clone, Serialize)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ParamKind,
    pub default: f64,
    pub min: f64,
    pub max: f64,
    pub doc: &'static str,
}

impl ParamSpec {
    pub const fn float(
        name: &'static str,
        default: f64,
        min: f64,
        max: f64,
        doc: &'static str,
    ) -> Self {
        Self {
            name,
            kind: ParamKind::Float,
            default,
            min,
            max,
            doc,
        }
    }
    pub const fn int(
        name: &'static str,
        default: f64,
        min: f64,
        max: f64,
        doc: &'static str,
    ) -> Self {
        Self {
            name,
            kind: ParamKind::Int,
            default,
            min,
            max,
            doc,
        }
    }
}

/// Validated parameter values, every declared parameter present.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Params {
    pub plugin: String,
    pub values: BTreeMap<String, f64>,
}

impl Params {
    /// The value of a declared parameter (validation guarantees presence; absent reads 0).
    pub fn get(&self, key: &str) -> f64 {
        self.values.get(key).copied().unwrap_or(0.0)
    }

    pub(crate) fn validate(
        plugin: &str,
        specs: &[ParamSpec],
        given: &BTreeMap<String, toml::Value>,
    ) -> Result<Self, RegistryError> {
        let allowed = || {
            if specs.is_empty() {
                "(none)".to_string()
            } else {
                specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
            }
        };
        let bad = |key: &str, message: String| RegistryError::BadParam {
            plugin: plugin.to_string(),
            key: key.to_string(),
            message,
        };
        for key in given.keys() {
            if !specs.iter().any(|s| s.name == key) {
                return Err(RegistryError::UnknownParam {
                    plugin: plugin.to_string(),
                    key: key.clone(),
                    allowed: allowed(),
                });
            }
        }
        let mut values = BTreeMap::new();
        for spec in specs {
            let v = match given.get(spec.name) {
                None => spec.default,
                Some(toml::Value::Integer(i)) => *i as f64,
                Some(toml::Value::Float(f)) if spec.kind == ParamKind::Float => *f,
                Some(other) => {
                    let want = match spec.kind {
                        ParamKind::Float => "a number",
                        ParamKind::Int => "an integer",
                    };
                    return Err(bad(spec.name, format!("expected {want}, got `{other}`")));
                }
            };
            if !(v >= spec.min && v <= spec.max) {
                return Err(bad(
                    spec.name,
                    format!("{v} is out of range; allowed {} ..= {}", spec.min, spec.max),
                ));
            }
            values.insert(spec.name.to_string(), v);
        }
        Ok(Self {
            plugin: plugin.to_string(),
            values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, builtin_registry};
    use super::*;

    fn given(plugin: &str, key: &str, value: toml::Value) -> PluginRef {
        let mut r = PluginRef::named(plugin);
        r.params.insert(key.to_string(), value);
        r
    }

    /// Every numeric parameter of every built-in plugin declares a finite range that holds its
    /// default and a doc line; out-of-range values are refused naming the plugin, the key, the
    /// value and the range, and each end of the range is accepted.
    #[test]
    fn every_builtin_parameter_is_range_checked() {
        let registry = builtin_registry();
        let mut checked = 0;
        for plugin in registry.describe() {
            let family = plugin.kind;
            for spec in &plugin.params {
                let what = format!("{}.{}", plugin.name, spec.name);
                assert!(spec.min.is_finite() && spec.max.is_finite(), "{what}");
                assert!(
                    spec.min <= spec.default && spec.default <= spec.max,
                    "{what}"
                );
                assert!(!spec.doc.is_empty(), "{what} has no doc line");
                let value = |v: f64| match spec.kind {
                    ParamKind::Int => toml::Value::Integer(v as i64),
                    ParamKind::Float => toml::Value::Float(v),
                };
                let (below, above) = match spec.kind {
                    ParamKind::Int => (spec.min.floor() - 1.0, spec.max.ceil() + 1.0),
                    ParamKind::Float => (spec.min - 1.0, spec.max * 2.0 + 1.0),
                };
                for bad in [below, above] {
                    let err = registry
                        .validate(family, &given(plugin.name, spec.name, value(bad)))
                        .expect_err(&format!("{what} = {bad} is refused"))
                        .to_string();
                    let range = format!("allowed {} ..= {}", spec.min, spec.max);
                    assert!(
                        err.contains(&what)
                            && err.contains(&bad.to_string())
                            && err.contains(&range),
                        "{err}"
                    );
                }
                for ok in [spec.min, spec.max] {
                    let ok = match spec.kind {
                        ParamKind::Int => ok.round(),
                        ParamKind::Float => ok,
                    };
                    let params = registry
                        .validate(family, &given(plugin.name, spec.name, value(ok)))
                        .unwrap_or_else(|e| panic!("{what} = {ok}: {e}"));
                    assert_eq!(params.get(spec.name), ok, "{what}");
                }
                checked += 1;
            }
        }
        assert!(checked >= 10, "only {checked} parameters found");
    }

    #[test]
    fn nan_infinity_and_wrong_types_are_refused() {
        let registry = builtin_registry();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = registry
                .validate(Kind::Loss, &given("focal", "gamma", toml::Value::Float(v)))
                .expect_err("refused")
                .to_string();
            assert!(
                err.contains("focal.gamma") && err.contains("out of range"),
                "{err}"
            );
        }
        let err = registry
            .validate(
                Kind::Loss,
                &given("focal", "gamma", toml::Value::String("2".into())),
            )
            .expect_err("refused")
            .to_string();
        assert!(err.contains("focal.gamma: expected a number"), "{err}");
        let int = registry
            .describe()
            .into_iter()
            .find_map(|p| {
                p.params
                    .iter()
                    .find(|s| s.kind == ParamKind::Int)
                    .map(|s| (p.name, p.kind, s.name))
            })
            .expect("an integer parameter exists");
        let err = registry
            .validate(int.1, &given(int.0, int.2, toml::Value::Float(1.5)))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("expected an integer"), "{err}");
    }
}
