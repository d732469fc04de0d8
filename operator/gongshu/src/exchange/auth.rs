//! Who is calling (SEC-2): a projected ServiceAccount token for the audience
//! `gongshu-exchange`, checked by the apiserver with a TokenReview, so the exchange holds no
//! signing keys and honours the apiserver's own revocation (a deleted ServiceAccount or pod
//! ends its tokens).
//!
//! Answers are cached for a few seconds, keyed by the token's SHA-256 (the token itself is
//! never kept, logged or audited), and never past the token's own `exp`.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use gongshu_api::rules::exchange::{AUDIENCE, ServiceAccount};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::{Api, Client, api::PostParams};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::problem::Problem;

/// How long an answer is reused: revoking a token (deleting its ServiceAccount) takes effect
/// within this.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// How long a refusal is reused: short, so a caller that fixes its token is not kept waiting.
const NEGATIVE_TTL: Duration = Duration::from_secs(2);
/// Entries kept at most; past this the cache is emptied (cheap, and rare: one entry per live
/// token).
const CACHE_MAX: usize = 16_384;

type Answer = Result<ServiceAccount, Problem>;

/// TokenReview with a short cache.
pub struct Authenticator {
    client: Client,
    cache: Mutex<HashMap<[u8; 32], (Instant, Answer)>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator asking the apiserver behind `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The ServiceAccount presenting the bearer token in `headers`, or a 401/403 problem.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Answer {
        let token = bearer(headers)?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(answer) = self.cached(&key, now) {
            return answer;
        }
        let (answer, ttl) = match self.review(token).await {
            Ok(answer) => {
                let ttl = if answer.is_ok() {
                    CACHE_TTL.min(until_expiry(token).unwrap_or(CACHE_TTL))
                } else {
                    NEGATIVE_TTL
                };
                (answer, ttl)
            }
            // The apiserver did not answer: not the caller's fault, and not cached.
            Err(problem) => return Err(problem),
        };
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (now + ttl, answer.clone()));
        answer
    }

    fn cached(&self, key: &[u8; 32], now: Instant) -> Option<Answer> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(key)
            .filter(|(until, _)| *until > now)
            .map(|(_, answer)| answer.clone())
    }

    /// Asks the apiserver. The outer error is the apiserver failing (503); the inner one the
    /// token being refused.
    async fn review(&self, token: &str) -> Result<Answer, Problem> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![AUDIENCE.to_owned()]),
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|error| {
                warn!(%error, "TokenReview failed");
                Problem::unavailable("cannot check the token with the Kubernetes API server")
            })?;
        let status = reviewed.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            let why = status
                .error
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "the token is not valid".into());
            return Ok(Err(unauthenticated(format!(
                "{why}; present a current token for the audience {AUDIENCE} \
                 (kubectl create token <serviceaccount> --audience {AUDIENCE})"
            ))));
        }
        let username = status.user.and_then(|u| u.username).unwrap_or_default();
        Ok(ServiceAccount::from_username(&username).ok_or_else(|| {
            Problem::new(
                StatusCode::FORBIDDEN,
                "not-a-service-account",
                "Only ServiceAccounts use the exchange",
                format!("{username} is not a ServiceAccount; grants name the ServiceAccounts of the consumer department"),
            )
            .rule("SH-3")
        }))
    }
}

fn unauthenticated(detail: String) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "Authentication failed",
        detail,
    )
    .rule("SEC-2")
}

/// The bearer token of the `Authorization` header.
fn bearer(headers: &HeaderMap) -> Result<&str, Problem> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        unauthenticated(format!(
            "send `Authorization: Bearer <token>` with a ServiceAccount token for the audience {AUDIENCE}"
        ))
    })?;
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthenticated("the Authorization header is not `Bearer <token>`".into()))
}

/// Time left before the token's `exp` claim, read without checking the signature (the
/// TokenReview did that): only to bound how long an answer is cached.
fn until_expiry(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_i64()?;
    let now = jiff::Timestamp::now().as_second();
    Some(Duration::from_secs(u64::try_from(exp - now).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_bearer_token_is_taken_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            bearer(&headers).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer(&headers).unwrap_err().detail.contains("Bearer"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer a.b.c"),
        );
        assert_eq!(bearer(&headers).unwrap(), "a.b.c");
    }

    #[test]
    fn the_cache_lifetime_never_outlasts_the_token() {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let exp = jiff::Timestamp::now().as_second() + 3;
        let token = format!(
            "{}.{}.sig",
            engine.encode(br#"{"alg":"RS256"}"#),
            engine.encode(format!(r#"{{"exp":{exp}}}"#))
        );
        let left = until_expiry(&token).unwrap();
        assert!(left <= Duration::from_secs(3), "{left:?}");
        let expired = format!("x.{}.sig", engine.encode(br#"{"exp":1}"#));
        assert_eq!(until_expiry(&expired), Some(Duration::ZERO));
        assert_eq!(until_expiry("not-a-jwt"), None);
    }
}
