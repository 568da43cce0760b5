//! `{key}` placeholders in a command run's argv, env and cwd. They are filled in two phases so
//! that the stored run is the exact command: at submission every spec value (`{seed}`,
//! `{train.lr}`, ...) is substituted and only the worker's own values (`{run_dir}`, ...) stay;
//! the worker fills those. `{{` and `}}` are literal braces in both phases.

/// Placeholders only the worker can fill: where it runs the program, and which attempt it is.
pub const RUNTIME: [&str; 4] = ["run_dir", "checkpoint_dir", "run_id", "attempt"];

/// Short names for the keys every LT spec has: `(placeholder, dotted key)`.
pub const SHORTCUTS: [(&str, &str); 4] = [
    ("seed", "train.seed"),
    ("ratio", "data.imbalance.ratio"),
    ("epochs", "train.epochs"),
    ("balanced", "data.balanced_variant"),
];

/// Longest text a placeholder expands to in one argument, and longest argument.
pub const MAX_ARG_BYTES: usize = 4096;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    /// `{{` or `}}`.
    Brace(char),
    Key(&'a str),
}

/// Splits a template into literal text, escaped braces and placeholders.
fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let Some(at) = rest.find(['{', '}']) else {
            out.push(Piece::Text(rest));
            break;
        };
        if at > 0 {
            out.push(Piece::Text(&rest[..at]));
        }
        let tail = &rest[at..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push(Piece::Brace(tail.as_bytes()[0] as char));
            rest = &tail[2..];
        } else if tail.starts_with('}') {
            return Err("a lone `}` (write `}}` for a literal brace)".into());
        } else {
            let end = tail
                .find('}')
                .ok_or("an unclosed `{` (write `{{` for a literal brace)")?;
            let key = tail[1..end].trim();
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return Err(format!(
                    "`{}` is not a placeholder (letters, digits, `_`, `-` and `.` only)",
                    &tail[..=end]
                ));
            }
            out.push(Piece::Key(key));
            rest = &tail[end + 1..];
        }
    }
    Ok(out)
}

/// The placeholders a template names, in order.
pub fn keys(template: &str) -> Result<Vec<String>, String> {
    Ok(pieces(template)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Key(k) => Some(k.to_string()),
            _ => None,
        })
        .collect())
}

/// Phase 1 (submission): fills every placeholder but the [`RUNTIME`] ones through `value`
/// (which says why a key has no value), keeping escaped braces and runtime placeholders as
/// they are so that [`fill_runtime`] can finish the job.
pub fn fill_spec(
    template: &str,
    value: impl Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Brace(c) => {
                out.push(c);
                out.push(c);
            }
            Piece::Key(k) if RUNTIME.contains(&k) => {
                out.push('{');
                out.push_str(k);
                out.push('}');
            }
            Piece::Key(k) => out.push_str(&value(k)?.replace('{', "{{").replace('}', "}}")),
        }
    }
    bounded(out)
}

/// Phase 2 (the worker): fills the [`RUNTIME`] placeholders and unescapes braces.
pub fn fill_runtime(
    template: &str,
    value: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Brace(c) => out.push(c),
            Piece::Key(k) => out.push_str(
                &value(k).ok_or_else(|| format!("`{{{k}}}` has no value on the worker"))?,
            ),
        }
    }
    bounded(out)
}

fn bounded(text: String) -> Result<String, String> {
    if text.len() > MAX_ARG_BYTES {
        return Err(format!(
            "expands to {} bytes; the limit is {MAX_ARG_BYTES}",
            text.len()
        ));
    }
    Ok(text)
}

/// A spec value as program text: strings as they are, numbers and booleans as TOML writes them
/// (`100`, `0.1`, `true`); tables and arrays have no one text and are refused.
pub fn scalar_text(value: &serde_json::Value) -> Result<String, String> {
    match value {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        serde_json::Value::Number(n) => Ok(match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.1}"),
            _ => n.to_string(),
        }),
        serde_json::Value::Null => Err("has no value".into()),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
            Err("is a list or table, not one value".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_value(k: &str) -> Result<String, String> {
        match k {
            "seed" => Ok("3".into()),
            "weird" => Ok("{x}".into()),
            _ => Err(format!("unknown `{k}`")),
        }
    }

    #[test]
    fn two_phases_fill_spec_values_then_the_workers_own() {
        let stored = fill_spec(
            "--seed={seed} --out {run_dir}/x {{lit}} {weird}",
            spec_value,
        )
        .unwrap();
        assert_eq!(stored, "--seed=3 --out {run_dir}/x {{lit}} {{x}}");
        let run = fill_runtime(&stored, |k| (k == "run_dir").then(|| "/r/7".to_string())).unwrap();
        assert_eq!(run, "--seed=3 --out /r/7/x {lit} {x}");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        assert!(
            fill_spec("{nope}", spec_value)
                .unwrap_err()
                .contains("unknown `nope`")
        );
        assert!(
            fill_spec("{seed", spec_value)
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(fill_spec("a}b", spec_value).unwrap_err().contains("lone"));
        assert!(
            fill_spec("{a b}", spec_value)
                .unwrap_err()
                .contains("not a placeholder")
        );
        assert_eq!(
            keys("{seed} {train.lr} {{x}}").unwrap(),
            ["seed", "train.lr"]
        );
        let long = "x".repeat(MAX_ARG_BYTES + 1);
        assert!(fill_spec(&long, spec_value).unwrap_err().contains("limit"));
    }

    #[test]
    fn values_print_as_toml_writes_them() {
        use serde_json::json;
        assert_eq!(scalar_text(&json!(100)).unwrap(), "100");
        assert_eq!(scalar_text(&json!(100.0)).unwrap(), "100.0");
        assert_eq!(scalar_text(&json!(0.1)).unwrap(), "0.1");
        assert_eq!(scalar_text(&json!(true)).unwrap(), "true");
        assert_eq!(scalar_text(&json!("ldam")).unwrap(), "ldam");
        assert!(scalar_text(&json!([1])).is_err());
    }
}
