//! Per-attempt worker tokens: every launch gets a fresh random secret, handed to the worker in
//! its environment (`CAUDA_WORKER_TOKEN`, never on the command line, where `ps` shows it); the
//! daemon keeps only its SHA-256, in memory, so a token opens the `Worker` service for its own
//! (run, attempt) and nothing else. A restarted daemon relaunches its runs with new tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::RngCore;

use crate::model::RunId;

/// The environment variable a worker finds its token in.
pub const WORKER_TOKEN_ENV: &str = "CAUDA_WORKER_TOKEN";

/// The live workers' token hashes, shared by the executor (issues, revokes) and the gRPC
/// worker gate (looks up).
#[derive(Debug, Clone, Default)]
pub struct WorkerTokens {
    /// sha256 hex of a token -> the attempt it was issued for.
    by_hash: Arc<Mutex<HashMap<String, (RunId, u32)>>>,
}

impl WorkerTokens {
    /// A new random token (32 bytes, hex) for `(run, attempt)`; a previous token of the same
    /// attempt stops working.
    pub fn issue(&self, run: RunId, attempt: u32) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = cauda_proto::hex(&bytes);
        if let Ok(mut map) = self.by_hash.lock() {
            map.retain(|_, key| *key != (run, attempt));
            map.insert(crate::store::sha256_hex(token.as_bytes()), (run, attempt));
        }
        token
    }

    /// Admits the token whose SHA-256 is `sha256` for `(run, attempt)` again (a restarted
    /// daemon whose cluster job, with its token, outlived the previous daemon).
    pub fn admit_hash(&self, sha256: &str, run: RunId, attempt: u32) {
        if let Ok(mut map) = self.by_hash.lock() {
            map.insert(sha256.to_ascii_lowercase(), (run, attempt));
        }
    }

    /// Forgets the token of `(run, attempt)` (its worker exited).
    pub fn revoke(&self, run: RunId, attempt: u32) {
        if let Ok(mut map) = self.by_hash.lock() {
            map.retain(|_, key| *key != (run, attempt));
        }
    }

    /// The attempt a presented token belongs to, if it is live.
    pub fn holder(&self, token: &str) -> Option<(RunId, u32)> {
        let hash = crate::store::sha256_hex(token.as_bytes());
        self.by_hash.lock().ok()?.get(&hash).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_only_its_own_attempt_until_revoked() {
        let tokens = WorkerTokens::default();
        let a = tokens.issue(RunId(1), 1);
        let b = tokens.issue(RunId(2), 1);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(tokens.holder(&a), Some((RunId(1), 1)));
        assert_eq!(tokens.holder(&b), Some((RunId(2), 1)));
        assert_eq!(tokens.holder("not a token"), None);
        let again = tokens.issue(RunId(1), 1);
        assert_eq!(tokens.holder(&a), None, "a relaunch replaces the token");
        tokens.revoke(RunId(1), 1);
        assert_eq!(tokens.holder(&again), None);
        assert_eq!(tokens.holder(&b), Some((RunId(2), 1)));
    }
}
