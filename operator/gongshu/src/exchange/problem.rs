//! Every error the exchange answers with, in one shape: an RFC 9457 problem document
//! (`application/problem+json`), with the rule id where a regulation is the reason.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use gongshu_api::rules::exchange::Denial;
use serde::Serialize;

/// Base of every problem `type` URI; the OpenAPI document lists the slugs.
pub const TYPE_BASE: &str = "https://gongshu.io/problems/";

/// One problem: what went wrong (`title`, the same for every instance of the `slug`), the
/// specifics (`detail`) and the regulation behind it (`rule`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable short name, the last segment of the `type` URI.
    pub slug: &'static str,
    /// Summary of the problem type.
    pub title: &'static str,
    /// This occurrence, in words a caller can act on.
    pub detail: String,
    /// The REQUIREMENTS.md rule, when the law is the reason.
    pub rule: Option<&'static str>,
}

impl Problem {
    /// A problem of type `slug`.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            rule: None,
        }
    }

    /// The same problem, citing `rule`.
    pub fn rule(mut self, rule: &'static str) -> Self {
        self.rule = Some(rule);
        self
    }

    /// 400: the request itself is wrong.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "The request is malformed",
            detail,
        )
    }

    /// 404 for a grant the caller may not learn about, or that does not exist: the two are
    /// answered alike so that a token cannot probe other departments' grants.
    pub fn no_grant() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "grant-not-found",
            "No such grant",
            "no grant of that name is visible to this caller",
        )
    }

    /// 502: the provider's source failed or does not match its catalog.
    pub fn source(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "source-unavailable",
            "The provider's data source failed",
            detail,
        )
    }

    /// 503: the exchange is starting (its caches have not listed yet) or shutting down.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The exchange cannot serve right now",
            detail,
        )
    }

    /// The full `type` URI.
    pub fn type_uri(&self) -> String {
        format!("{TYPE_BASE}{}", self.slug)
    }
}

impl From<Denial> for Problem {
    fn from(denial: Denial) -> Self {
        let (status, title) = match denial {
            Denial::NotListed { .. } => (StatusCode::FORBIDDEN, "Not a grantee"),
            Denial::NotActive { .. } => (StatusCode::FORBIDDEN, "The grant is not active"),
            Denial::Expired { .. } => (StatusCode::FORBIDDEN, "The grant has expired"),
            Denial::WrongMode { .. } => (StatusCode::FORBIDDEN, "Not the granted mode"),
        };
        Self::new(status, denial.slug(), title, denial.to_string()).rule(denial.rule())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = Body {
            type_uri: self.type_uri(),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            rule: self.rule,
        };
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="gongshu-exchange""#),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::body::to_bytes;
    use gongshu_api::v1alpha1::{GrantPhase, ShareMode};

    use super::*;

    #[tokio::test]
    async fn a_problem_is_rfc_9457_json_with_its_rule() {
        let problem = Problem::from(Denial::NotActive {
            phase: Some(GrantPhase::Suspended),
        });
        let response = problem.into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = to_bytes(response.into_body(), 4096).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["type"], "https://gongshu.io/problems/grant-not-active");
        assert_eq!(json["status"], 403);
        assert_eq!(json["rule"], "SH-14");
        assert!(json["detail"].as_str().unwrap().contains("Suspended"));
    }

    #[tokio::test]
    async fn unauthorized_answers_carry_a_bearer_challenge() {
        let problem = Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", "t", "d");
        let response = problem.into_response();
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="gongshu-exchange""#
        );
        let wrong_mode = Problem::from(Denial::WrongMode {
            granted: ShareMode::Verify,
            asked: ShareMode::Api,
        });
        assert_eq!(wrong_mode.rule, Some("SH-5"));
    }
}
