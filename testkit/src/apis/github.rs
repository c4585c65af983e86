//! A stand-in for GitHub's REST API, as "Rate limits for the REST API" and
//! "Troubleshooting the REST API" describe it: every answer carries the
//! primary limit's `x-ratelimit-*` headers; a spent primary limit answers
//! `403` (or `429`) with `x-ratelimit-remaining: 0` and the reset in UTC epoch
//! seconds; a secondary limit answers `403` or `429` with `retry-after`;
//! errors are `{"message", "documentation_url"}`, and a validation failure
//! adds `errors` of `{"resource", "field", "code"}`.
//!
//! | request | answer |
//! |---|---|
//! | `GET /repos/OWNER/REPO` | 200 with the repository |
//! | `GET /repos/OWNER/missing` | 404 Not Found |
//! | `GET /user` with `Authorization: Bearer revoked` | 401 Bad credentials |
//! | `GET /orgs/ORG/audit-log` | 403 Resource not accessible (no rate limit) |
//! | `POST /repos/OWNER/REPO/issues` without a `title` | 422 Validation Failed, `missing_field` |
//! | `POST /repos/OWNER/REPO/issues` | 201 with the issue |
//! | `GET` or `POST /limits/primary/KEY` (`primary-429`) | 403 (429), none left, reset 2 s ahead; then 200 |
//! | `GET` or `POST /limits/secondary/KEY` (`secondary-429`) | 403 (429) with `retry-after: 1`; then 200 |

use std::time::{Duration, SystemTime};

use http::{Method, Response};

use super::{PerPath, Scenario, json, segments, with};
use crate::{Body, TestRequest, TestServer};

/// How far ahead a spent primary limit resets, in seconds.
pub const RESET_SECS: u64 = 2;

/// What a secondary limit asks to wait, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

const RATE_LIMIT_DOCS: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";

/// Starts the stand-in on a free port.
pub async fn start() -> TestServer {
    start_on(0).await.expect("bind a port on 127.0.0.1")
}

/// Starts the stand-in on `port` (0 for a free one).
pub async fn start_on(port: u16) -> std::io::Result<TestServer> {
    super::serve(port, answer).await
}

/// The demo's requests.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::get("200 with x-ratelimit-* headers", "/repos/octo/hello"),
        Scenario::get(
            "403, primary limit spent, reset in 2 s",
            "/limits/primary/demo",
        ),
        Scenario::get(
            "429, primary limit spent, reset in 2 s",
            "/limits/primary-429/demo",
        ),
        Scenario::get(
            "403, secondary limit, retry-after: 1",
            "/limits/secondary/demo",
        ),
        Scenario::get(
            "429, secondary limit, retry-after: 1",
            "/limits/secondary-429/demo",
        ),
        Scenario::get("403, no permission", "/orgs/octo/audit-log"),
        Scenario::new(
            "422, validation failed",
            Method::POST,
            "/repos/octo/hello/issues",
        )
        .with_body(r#"{"body":"no title"}"#),
        Scenario::get("404, no such repository", "/repos/octo/missing"),
        Scenario::get("401, bad credentials", "/user")
            .with_header("authorization", "Bearer revoked"),
    ]
}

fn answer(seen: &PerPath, request: &TestRequest) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let count = seen.count(&path);
    let now = SystemTime::now();
    let epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let revoked = request
        .headers()
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == b"Bearer revoked");
    if revoked {
        return error(
            401,
            "Bad credentials",
            "https://docs.github.com/rest",
            Quota::left(now, 4999),
        );
    }
    let body = String::from_utf8_lossy(request.body()).into_owned();
    match (request.method().clone(), segments(&path).as_slice()) {
        (Method::GET, ["repos", _, "missing"]) => error(
            404,
            "Not Found",
            "https://docs.github.com/rest/repos/repos#get-a-repository",
            Quota::left(now, 4998),
        ),
        (Method::GET, ["repos", owner, repo]) => Quota::left(now, 4999).on(json(
            200,
            format!(r#"{{"full_name":"{owner}/{repo}","private":false}}"#),
        )),
        (Method::POST, ["repos", _, _, "issues"]) if !body.contains("\"title\"") => {
            Quota::left(now, 4997).on(json(
                422,
                r#"{"message":"Validation Failed","errors":[{"resource":"Issue","field":"title","code":"missing_field"}],"documentation_url":"https://docs.github.com/rest/issues/issues#create-an-issue","status":"422"}"#,
            ))
        }
        (Method::POST, ["repos", _, _, "issues"]) => {
            Quota::left(now, 4997).on(json(201, r#"{"number":1,"state":"open"}"#))
        }
        (Method::GET, ["user"]) => Quota::left(now, 4999).on(json(200, r#"{"login":"octocat"}"#)),
        (Method::GET, ["orgs", _, "audit-log"]) => error(
            403,
            "Resource not accessible by integration",
            "https://docs.github.com/rest/orgs/orgs",
            Quota::left(now, 4996),
        ),
        (Method::GET | Method::POST, ["limits", kind @ ("primary" | "primary-429"), ..])
            if count == 1 =>
        {
            let status = if *kind == "primary" { 403 } else { 429 };
            let quota = Quota {
                date: now,
                remaining: 0,
                reset: epoch + RESET_SECS,
            };
            error(
                status,
                "API rate limit exceeded for 203.0.113.7. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)",
                RATE_LIMIT_DOCS,
                quota,
            )
        }
        (Method::GET | Method::POST, ["limits", kind @ ("secondary" | "secondary-429"), ..])
            if count == 1 =>
        {
            let status = if *kind == "secondary" { 403 } else { 429 };
            let response = error(
                status,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                RATE_LIMIT_DOCS,
                Quota::left(now, 4990),
            );
            with(
                response,
                &[("retry-after", RETRY_AFTER_SECS.to_string())],
            )
        }
        (Method::GET | Method::POST, ["limits", ..]) => {
            Quota::left(now, 4989).on(json(200, format!(r#"{{"answered":{count}}}"#)))
        }
        _ => error(
            404,
            "Not Found",
            "https://docs.github.com/rest",
            Quota::left(now, 4999),
        ),
    }
}

/// The primary limit as an answer reports it.
struct Quota {
    date: SystemTime,
    remaining: u32,
    /// UTC epoch seconds.
    reset: u64,
}

impl Quota {
    /// `remaining` requests left of 5,000, the hour resetting in an hour.
    fn left(date: SystemTime, remaining: u32) -> Quota {
        let reset = (date + Duration::from_secs(3600))
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Quota {
            date,
            remaining,
            reset,
        }
    }

    /// `response` with the headers GitHub sends on every answer, and the
    /// `Date` the reset is measured against.
    fn on(&self, response: Response<Body>) -> Response<Body> {
        with(
            response,
            &[
                ("date", httpdate::fmt_http_date(self.date)),
                ("x-ratelimit-limit", "5000".to_owned()),
                ("x-ratelimit-remaining", self.remaining.to_string()),
                ("x-ratelimit-used", (5000 - self.remaining).to_string()),
                ("x-ratelimit-reset", self.reset.to_string()),
                ("x-ratelimit-resource", "core".to_owned()),
            ],
        )
    }
}

/// An error as GitHub writes it.
fn error(status: u16, message: &str, docs: &str, quota: Quota) -> Response<Body> {
    quota.on(json(
        status,
        format!(r#"{{"message":"{message}","documentation_url":"{docs}","status":"{status}"}}"#),
    ))
}
