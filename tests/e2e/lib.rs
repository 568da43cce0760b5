//! Nothing: `cauda-e2e` is its test binary (`e2e/main.rs`).
