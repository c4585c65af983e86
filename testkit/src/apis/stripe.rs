//! A stand-in for Stripe's API, as "Error handling", "Advanced error
//! handling", "Idempotent requests" and "Rate limits" describe it: errors are
//! `{"error": {"type", "code", "message", "param", "doc_url"}}` (with a
//! `decline_code` for a declined card), `Stripe-Should-Retry` overrides the
//! status, `409 idempotency_key_in_use` means another request with the same
//! key is still running, and `429` is a rate limit or a lock timeout.
//!
//! An answer to a request with an `Idempotency-Key` echoes it, as Stripe's
//! do. Where a charge fails once, the stand-in remembers the first attempt's
//! key and answers the next attempt with the charge only if it carries the
//! same key; another key, or none, would have charged twice, and is answered
//! `400 idempotency_key_changed` (the stand-in's own code, not Stripe's). Its
//! `500` is one that happened before the charge began, which Stripe does not
//! save against the key, so the retry runs.
//!
//! | request | answer |
//! |---|---|
//! | `GET /v1/customers/ID` | 200 with the customer |
//! | `GET /v1/customers/cus_missing` | 404 `resource_missing` |
//! | `POST /v1/payment_intents/pi_declined/confirm` | 402 `card_declined`, `insufficient_funds` |
//! | `POST /v1/charges/flaky/KEY` | 500 `api_error` once; then the charge |
//! | `POST /v1/charges/in-use/KEY` | 409 `idempotency_key_in_use` once; then the charge |
//! | `POST /v1/charges/lock/KEY` | 409 `lock_timeout` with `Stripe-Should-Retry: true` once; then the charge |
//! | `POST /v1/charges/replayed/KEY` | 500 with `Stripe-Should-Retry: false`, every time |
//! | `GET /v1/balance/KEY` | 429 `rate_limit` once; then the balance |

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{Method, Response};

use super::{PerPath, Scenario, json, segments, with};
use crate::{Body, TestRequest, TestServer};

/// Starts the stand-in on a free port.
pub async fn start() -> TestServer {
    start_on(0).await.expect("bind a port on 127.0.0.1")
}

/// Starts the stand-in on `port` (0 for a free one).
pub async fn start_on(port: u16) -> std::io::Result<TestServer> {
    let state = State::default();
    TestServer::start_on(port, move |request| {
        let response = state.answer(&request);
        async move { response }
    })
    .await
}

/// The demo's requests.
pub fn scenarios() -> Vec<Scenario> {
    let post = |what, path: &str| {
        Scenario::new(what, Method::POST, path).with_body(r#"{"amount":2000,"currency":"usd"}"#)
    };
    vec![
        Scenario::get("200 with the customer", "/v1/customers/cus_1"),
        Scenario::get("404, resource_missing", "/v1/customers/cus_missing"),
        post(
            "402, card_declined: insufficient_funds",
            "/v1/payment_intents/pi_declined/confirm",
        ),
        post("500 once, the same key, then 200", "/v1/charges/flaky/demo"),
        post(
            "409 idempotency_key_in_use, then 200",
            "/v1/charges/in-use/demo",
        ),
        post(
            "409 + Stripe-Should-Retry: true, then 200",
            "/v1/charges/lock/demo",
        ),
        post(
            "500 + Stripe-Should-Retry: false",
            "/v1/charges/replayed/demo",
        ),
        Scenario::get("429 rate_limit, then 200", "/v1/balance/demo"),
    ]
}

#[derive(Debug, Clone, Default)]
struct State {
    seen: PerPath,
    /// The `Idempotency-Key` of each path's first request.
    keys: Arc<Mutex<HashMap<String, Option<String>>>>,
}

impl State {
    fn answer(&self, request: &TestRequest) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let count = self.seen.count(&path);
        let key = request
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let first_key = {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            keys.entry(path.clone())
                .or_insert_with(|| key.clone())
                .clone()
        };
        let same_key = key.is_some() && key == first_key;
        let response = match (request.method().clone(), segments(&path).as_slice()) {
            (Method::GET, ["v1", "customers", "cus_missing"]) => error(
                404,
                "invalid_request_error",
                "resource_missing",
                "No such customer: 'cus_missing'",
            ),
            (Method::GET, ["v1", "customers", id]) => json(
                200,
                format!(r#"{{"id":"{id}","object":"customer","email":"jenny@example.com"}}"#),
            ),
            (Method::POST, ["v1", "payment_intents", "pi_declined", "confirm"]) => json(
                402,
                r#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds.","param":"","doc_url":"https://stripe.com/docs/error-codes/card-declined"}}"#,
            ),
            (Method::POST, ["v1", "charges", "replayed", _]) => with(
                error(500, "api_error", "", "An unknown error occurred."),
                &[("stripe-should-retry", "false".to_owned())],
            ),
            (Method::POST, ["v1", "charges", "flaky", _]) if count == 1 => {
                error(500, "api_error", "", "An unknown error occurred.")
            }
            (Method::POST, ["v1", "charges", "in-use", _]) if count == 1 => error(
                409,
                "invalid_request_error",
                "idempotency_key_in_use",
                "There is currently another in-progress request using this Stripe-Idempotency-Key. Please try again later.",
            ),
            (Method::POST, ["v1", "charges", "lock", _]) if count == 1 => with(
                error(
                    409,
                    "invalid_request_error",
                    "lock_timeout",
                    "This object cannot be accessed right now because another API request or Stripe process is currently accessing it.",
                ),
                &[("stripe-should-retry", "true".to_owned())],
            ),
            (Method::POST, ["v1", "charges", _, _]) if count > 1 && !same_key => error(
                400,
                "idempotency_error",
                "idempotency_key_changed",
                "The retry did not carry the first attempt's Idempotency-Key: Stripe would have charged twice.",
            ),
            (Method::POST, ["v1", "charges", _, _]) => json(
                200,
                format!(
                    r#"{{"id":"ch_1","object":"charge","amount":2000,"paid":true,"attempt":{count}}}"#
                ),
            ),
            (Method::GET, ["v1", "balance", _]) if count == 1 => error(
                429,
                "invalid_request_error",
                "rate_limit",
                "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            ),
            (Method::GET, ["v1", "balance", _]) => json(
                200,
                r#"{"object":"balance","available":[{"amount":0,"currency":"usd"}]}"#,
            ),
            _ => error(
                404,
                "invalid_request_error",
                "resource_missing",
                "Unrecognized request URL.",
            ),
        };
        match key {
            Some(key) => with(response, &[("idempotency-key", key)]),
            None => response,
        }
    }
}

/// An error as Stripe writes it; an empty `code` is left out.
fn error(status: u16, kind: &str, code: &str, message: &str) -> Response<Body> {
    let code = if code.is_empty() {
        String::new()
    } else {
        let slug = code.replace('_', "-");
        format!(r#""code":"{code}","doc_url":"https://stripe.com/docs/error-codes/{slug}","#)
    };
    json(
        status,
        format!(r#"{{"error":{{"type":"{kind}",{code}"message":"{message}"}}}}"#),
    )
}
