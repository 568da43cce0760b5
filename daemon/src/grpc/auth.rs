//! Who is calling: bearer-token gates in front of the two services. The public `Cauda` gate
//! maps `authorization: Bearer <token>` to a configured user by the token's SHA-256 (the config
//! stores only hashes) and puts the `Actor` into the request's extensions; the `Worker` gate
//! maps a per-attempt worker token to the `(run, attempt)` it was issued for, and handlers
//! check that a call is about that attempt. Without `[auth]` both gates let everything through
//! and callers act as `Actor::unchecked()` (today's behaviour). Health is not gated.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::config::AuthConfig;
use crate::executor::WorkerTokens;
use crate::model::{Actor, RunId};

/// The public API's gate: the configured users by token hash, or `None` for no auth.
#[derive(Debug, Clone, Default)]
pub struct UserGate {
    users: Option<Arc<HashMap<String, Actor>>>,
}

impl UserGate {
    /// A gate letting the users of `auth` in (`None`: no authentication).
    pub fn new(auth: Option<&AuthConfig>) -> Self {
        let users = auth.map(|a| {
            Arc::new(
                a.users
                    .iter()
                    .map(|u| {
                        let actor = Actor {
                            name: u.name.clone(),
                            admin: u.admin,
                        };
                        (u.token_sha256.to_ascii_lowercase(), actor)
                    })
                    .collect(),
            )
        });
        Self { users }
    }
}

impl Interceptor for UserGate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let Some(users) = &self.users else {
            return Ok(request);
        };
        let token = bearer(&request)?;
        let actor = users
            .get(&crate::store::sha256_hex(token.as_bytes()))
            .cloned()
            .ok_or_else(|| Status::unauthenticated("unknown token"))?;
        request.extensions_mut().insert(actor);
        Ok(request)
    }
}

/// The caller of a public call: the authenticated user, or `Actor::unchecked()` without auth.
pub fn actor<T>(request: &Request<T>) -> Actor {
    request
        .extensions()
        .get::<Actor>()
        .cloned()
        .unwrap_or_else(Actor::unchecked)
}

/// WhoAmI's answer: the authenticated caller, or "anonymous" without auth.
pub fn who_am_i<T>(request: &Request<T>) -> cauda_proto::v1::WhoAmIResponse {
    let authenticated = request.extensions().get::<Actor>();
    let actor = authenticated.cloned().unwrap_or_else(Actor::unchecked);
    cauda_proto::v1::WhoAmIResponse {
        user: actor.name,
        admin: actor.admin,
        auth_enabled: authenticated.is_some(),
    }
}

/// Whom a submission is recorded under: without auth the request's `user` (or "anonymous");
/// with auth the caller, or for an admin any `user` the request names.
pub fn submitter<T>(request: &Request<T>, requested: Option<&str>) -> Result<String, Status> {
    let Some(actor) = request.extensions().get::<Actor>() else {
        return Ok(requested.unwrap_or("anonymous").to_string());
    };
    match requested {
        None => Ok(actor.name.clone()),
        Some(name) if name == actor.name || actor.admin => Ok(name.to_string()),
        Some(name) => Err(Status::permission_denied(format!(
            "user: {} may not submit as {name}",
            actor.name
        ))),
    }
}

/// The worker service's gate: live worker tokens, or `None` for no auth.
#[derive(Debug, Clone, Default)]
pub struct WorkerGate {
    tokens: Option<WorkerTokens>,
}

/// The attempt a worker call's token was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerGrant {
    pub run: RunId,
    pub attempt: u32,
}

impl WorkerGate {
    pub fn new(tokens: Option<WorkerTokens>) -> Self {
        Self { tokens }
    }
}

impl Interceptor for WorkerGate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let Some(tokens) = &self.tokens else {
            return Ok(request);
        };
        let token = bearer(&request)?;
        let (run, attempt) = tokens
            .holder(token)
            .ok_or_else(|| Status::unauthenticated("not a live worker token"))?;
        request
            .extensions_mut()
            .insert(WorkerGrant { run, attempt });
        Ok(request)
    }
}

/// The grant a worker call carries (`None` without auth).
pub fn worker_grant<T>(request: &Request<T>) -> Option<WorkerGrant> {
    request.extensions().get::<WorkerGrant>().copied()
}

/// Refuses a worker call about another attempt than its token's.
pub fn check_worker(grant: Option<WorkerGrant>, run: u64, attempt: u32) -> Result<(), Status> {
    match grant {
        Some(g) if g.run != RunId(run) || g.attempt != attempt => {
            Err(Status::permission_denied(format!(
                "this worker token is for run {} attempt {}, not run r-{run} attempt {attempt}",
                g.run, g.attempt
            )))
        }
        _ => Ok(()),
    }
}

/// The token of `authorization: Bearer <token>`.
fn bearer(request: &Request<()>) -> Result<&str, Status> {
    let value = request
        .metadata()
        .get(cauda_proto::AUTHORIZATION)
        .ok_or_else(|| Status::unauthenticated("authorization: missing (Bearer token)"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Status::unauthenticated("authorization: expected `Bearer <token>`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UserConfig;

    fn gate() -> UserGate {
        let user = |name: &str, token: &str, admin| UserConfig {
            name: name.into(),
            token_sha256: crate::store::sha256_hex(token.as_bytes()),
            admin,
        };
        UserGate::new(Some(&AuthConfig {
            users: vec![user("ada", "t-ada", false), user("root", "t-root", true)],
        }))
    }

    fn with_token(token: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(t) = token {
            cauda_proto::Bearer::new(t).expect("ascii").apply(&mut r);
        }
        r
    }

    #[test]
    fn tokens_map_to_users_and_others_are_unauthenticated() {
        let mut g = gate();
        for bad in [None, Some("nope")] {
            let err = g.call(with_token(bad)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated);
        }
        let r = g.call(with_token(Some("t-ada"))).expect("ada");
        assert_eq!(actor(&r).name, "ada");
        let me = who_am_i(&r);
        assert_eq!(
            (me.user.as_str(), me.admin, me.auth_enabled),
            ("ada", false, true)
        );
        assert_eq!(submitter(&r, None).unwrap(), "ada");
        assert_eq!(submitter(&r, Some("ada")).unwrap(), "ada");
        let err = submitter(&r, Some("bob")).unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        let r = g.call(with_token(Some("t-root"))).expect("root");
        assert_eq!(submitter(&r, Some("bob")).unwrap(), "bob");
    }

    #[test]
    fn without_auth_everyone_passes_as_before() {
        let r = UserGate::new(None).call(with_token(None)).expect("open");
        assert_eq!(actor(&r), Actor::unchecked());
        assert_eq!(submitter(&r, Some("bob")).unwrap(), "bob");
        assert_eq!(submitter(&r, None).unwrap(), "anonymous");
        assert!(!who_am_i(&r).auth_enabled);
        let r = WorkerGate::new(None).call(with_token(None)).expect("open");
        assert!(check_worker(worker_grant(&r), 7, 1).is_ok());
    }

    #[test]
    fn a_worker_token_is_good_for_its_attempt_only() {
        let tokens = WorkerTokens::default();
        let token = tokens.issue(RunId(3), 2);
        let mut g = WorkerGate::new(Some(tokens));
        let r = g.call(with_token(Some(&token))).expect("live token");
        assert!(check_worker(worker_grant(&r), 3, 2).is_ok());
        for (run, attempt) in [(4, 2), (3, 1)] {
            let err = check_worker(worker_grant(&r), run, attempt).unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied);
        }
        let err = g.call(with_token(Some("stale"))).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }
}
