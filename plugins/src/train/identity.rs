//! A run's identity: the hash the daemon reuses results by, checkpoints carry, and stage-2 runs
//! find their stage 1 with. It must not move when nothing trained changes (a dependency's
//! feature such as `serde_json/preserve_order`, a map's iteration order), and must move when the
//! engine does: the canonical text is written here, keys sorted and numbers in one defined
//! form, and the engine fingerprint (`ResolvedRun::engine`) is one of its keys.

use crate::hex::ToHex;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{TrainError, engine_fingerprint};
use crate::spec::ResolvedRun;

/// The keys of a resolved run that label it or place it but do not change what it trains:
/// its grid point's name, its method (preset) name and its resource request.
const NOT_IDENTITY: [&str; 3] = ["name", "method", "resources"];

/// Hash of a resolved run: the identity of what it trains (sha256 of its canonical JSON, see
/// [`canonical_json`], without the labels in `NOT_IDENTITY`), 64 lowercase hex digits. Two runs
/// with the same hash train the same model on the same split with the same seed and the same
/// engine: the daemon trains such a run once and reuses it. A run stored before fingerprints
/// (empty `engine`, not serialized) keeps the hash it was stored with.
///
/// One part of the resource request is identity: a run on `resources.gpus = N >= 2` trains
/// data-parallel over N replicas (`train::parallel`), whose BatchNorm statistics are per shard,
/// so it is hashed with `"data_parallel": N` (absent for one device, so those hashes stay).
pub fn config_hash(run: &ResolvedRun) -> String {
    let mut value = serde_json::to_value(run).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        for key in NOT_IDENTITY {
            object.remove(key);
        }
        if run.resources.gpus >= 2 {
            object.insert("data_parallel".into(), run.resources.gpus.into());
        }
    }
    let digest = Sha256::digest(canonical_json(&value).as_bytes());
    digest.to_hex()
}

/// Refuses a run resolved for other engine code (`ResolvedRun::engine`, empty before
/// fingerprints): training it here would store this engine's result under another identity.
pub fn check_engine(run: &ResolvedRun) -> Result<(), TrainError> {
    let current = engine_fingerprint();
    if run.engine == current {
        return Ok(());
    }
    let found = if run.engine.is_empty() {
        "(before engine fingerprints)".to_string()
    } else {
        run.engine.clone()
    };
    Err(TrainError::OtherEngine { found, current })
}

/// The canonical text of a JSON value: no whitespace; object keys sorted by their UTF-8 bytes at
/// every depth, whatever order the map iterates in; strings escaped as serde_json escapes them;
/// integers in decimal; other numbers as the shortest text that reads back to the same `f64`
/// (serde_json's `ryu` form: `0.1`, `100.0`, `0.00001`, `1e-8`, `2.5e+20`). For maps without
/// `preserve_order` this is exactly `serde_json::to_string`, so hashes stored before it was
/// written are unchanged (a test pins both).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else {
                // A finite f64 (JSON has no other); serde_json writes it with ryu.
                let f = n.as_f64().unwrap_or(f64::NAN);
                out.push_str(&serde_json::to_string(&f).unwrap_or_else(|_| "null".into()));
            }
        }
        Value::String(s) => out.push_str(&quoted(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&quoted(key));
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
    }
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
#[path = "identity_test.rs"]
mod tests;
