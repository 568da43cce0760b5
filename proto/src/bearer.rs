//! `authorization: Bearer <token>`: how a call of either service carries its caller's token (a
//! user's for `Cauda`, an attempt's worker token for `Worker`). One interceptor for every client
//! of the API: the `cauda` CLI's, the worker's and the tests'.

use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The metadata key a token travels in.
pub const AUTHORIZATION: &str = "authorization";

/// Adds `authorization: Bearer <token>` to each call (nothing without a token).
#[derive(Debug, Clone, Default)]
pub struct Bearer(Option<AsciiMetadataValue>);

/// A token that cannot travel in a header: it is not printable ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenNotAscii;

impl std::fmt::Display for TokenNotAscii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not printable ASCII")
    }
}

impl std::error::Error for TokenNotAscii {}

impl Bearer {
    /// No token: calls go out without `authorization`.
    pub fn none() -> Self {
        Self(None)
    }

    /// Calls carry `token`, as it is (the caller trims it if it should).
    pub fn new(token: &str) -> Result<Self, TokenNotAscii> {
        format!("Bearer {token}")
            .parse()
            .map(|v| Self(Some(v)))
            .map_err(|_| TokenNotAscii)
    }

    /// Adds the header to one request (replacing any), if there is a token.
    pub fn apply<T>(&self, request: &mut Request<T>) {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert(AUTHORIZATION, value.clone());
        }
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        self.apply(&mut request);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_sent_as_bearer_and_none_sends_nothing() {
        let mut request = Request::new(());
        Bearer::new("t-ada").unwrap().apply(&mut request);
        assert_eq!(
            request.metadata().get(AUTHORIZATION).unwrap(),
            "Bearer t-ada"
        );
        let request = Bearer::none().call(Request::new(())).unwrap();
        assert!(request.metadata().get(AUTHORIZATION).is_none());
        assert_eq!(Bearer::new("t\n").unwrap_err(), TokenNotAscii);
    }
}
