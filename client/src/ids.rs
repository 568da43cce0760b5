//! Run and experiment ids as people type them: `r-12` or `12` for a run, `e-3` or `3` for an
//! experiment (the proto's convention: ids are numbers from 1, shown with a prefix). One place
//! parses and prints them so every command agrees.

/// Parses a run id: `r-12`, `R-12` or `12`; zero and other prefixes are refused.
pub fn parse_run_id(text: &str) -> Result<u64, String> {
    parse_prefixed(text, 'r', "run")
}

/// Parses an experiment id: `e-3`, `E-3` or `3`; zero and other prefixes are refused.
pub fn parse_experiment_id(text: &str) -> Result<u64, String> {
    parse_prefixed(text, 'e', "experiment")
}

/// A run id as shown to people: `r-12`.
pub fn run_label(id: u64) -> String {
    format!("r-{id}")
}

/// An experiment id as shown to people: `e-3`.
pub fn experiment_label(id: u64) -> String {
    format!("e-{id}")
}

fn parse_prefixed(text: &str, prefix: char, what: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = match trimmed.split_once('-') {
        Some((p, rest)) if p.len() == 1 && p.eq_ignore_ascii_case(&prefix.to_string()) => rest,
        Some(_) => {
            return Err(format!(
                "`{text}` is not a {what} id (expected `{prefix}-N` or `N`)"
            ));
        }
        None => trimmed,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{text}` is not a {what} id (expected `{prefix}-N` or `N`)"
        ));
    }
    match digits.parse::<u64>() {
        Ok(0) => Err(format!("{what} ids start at 1, got `{text}`")),
        Ok(id) => Ok(id),
        Err(_) => Err(format!("`{text}` is too large for a {what} id")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_parse_with_or_without_prefix() {
        assert_eq!(parse_run_id("r-12"), Ok(12));
        assert_eq!(parse_run_id("R-12"), Ok(12));
        assert_eq!(parse_run_id("12"), Ok(12));
        assert_eq!(parse_run_id(" 7 "), Ok(7));
    }

    #[test]
    fn experiment_ids_parse_with_or_without_prefix() {
        assert_eq!(parse_experiment_id("e-3"), Ok(3));
        assert_eq!(parse_experiment_id("3"), Ok(3));
    }

    #[test]
    fn bad_ids_are_refused_with_a_reason() {
        for bad in ["", "r-", "e-3", "r-1x", "-1", "r--1", "abc", "1.5", "x-2"] {
            let err = parse_run_id(bad).unwrap_err();
            assert!(err.contains("run id"), "{bad}: {err}");
        }
        assert!(parse_experiment_id("r-3").is_err());
        assert!(parse_run_id("0").unwrap_err().contains("start at 1"));
        assert!(
            parse_run_id("r-99999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn labels_round_trip() {
        assert_eq!(run_label(12), "r-12");
        assert_eq!(experiment_label(3), "e-3");
        assert_eq!(parse_run_id(&run_label(41)), Ok(41));
        assert_eq!(parse_experiment_id(&experiment_label(5)), Ok(5));
    }
}
