//! The API presets (`github`, `stripe`, `azure`, `google`) against the
//! testkit's stand-ins for those APIs, over real HTTP on 127.0.0.1 through
//! hyper-util's client: for each scenario of an API's documentation, the
//! outcome, the attempts and polls, the wait the server asked for, and the
//! error codes read from its body.
//!
//! Waits are read from the retry and poll events, which carry the delay
//! the policy chose; the clock only confirms that the call waited at least
//! that long, so nothing here depends on how fast the machine is.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::hyper_client;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tower::{Layer, ServiceExt};
use tower_rebound::events::{
    AttemptEnded, Listener, PollScheduled, PollWait, RetryScheduled, WaitReason,
};
use tower_rebound::poll::{OperationResult, StatusBody};
use tower_rebound::{CallInfo, Error, ErrorKind, FinalUrl, Policy, ResilienceLayer, RetryRefusal};
use tower_rebound_testkit::TestServer;
use tower_rebound_testkit::apis::{azure, github, google, stripe};

/// What the listener saw of one call.
#[derive(Debug, Default)]
struct Events {
    /// Each retry's wait and what set it.
    retries: Vec<(Duration, WaitReason)>,
    /// Each poll's wait and what set it.
    polls: Vec<(Duration, PollWait)>,
    /// The error codes of each attempt that had some.
    codes: Vec<Vec<String>>,
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Events>>);

impl Listener for Seen {
    fn retry_scheduled(&self, e: &RetryScheduled<'_>) {
        self.0.lock().unwrap().retries.push((e.delay(), e.wait()));
    }

    fn poll_scheduled(&self, e: &PollScheduled<'_>) {
        self.0.lock().unwrap().polls.push((e.delay(), e.wait()));
    }

    fn attempt_ended(&self, e: &AttemptEnded<'_>) {
        let codes: Vec<String> = e
            .api_errors()
            .iter()
            .filter_map(|a| a.code().map(str::to_owned))
            .collect();
        if !codes.is_empty() {
            self.0.lock().unwrap().codes.push(codes);
        }
    }
}

/// One call's result, what the listener saw and how long it took.
struct Called {
    result: Result<http::Response<Incoming>, Error>,
    events: Events,
    took: Duration,
}

impl Called {
    fn response(self, what: &str) -> (http::Response<Incoming>, Events, Duration) {
        match self.result {
            Ok(response) => (response, self.events, self.took),
            Err(e) => panic!("{what}: {e}"),
        }
    }

    fn error(self, what: &str) -> (Error, Events) {
        match self.result {
            Ok(response) => panic!("{what}: answered {}", response.status()),
            Err(e) => (e, self.events),
        }
    }
}

async fn call(policy: Policy, request: Request<Full<Bytes>>) -> Called {
    let seen = Seen::default();
    let client = ResilienceLayer::new(policy.with_listener(seen.clone())).layer(hyper_client());
    let started = Instant::now();
    let result = client.oneshot(request).await;
    let took = started.elapsed();
    let events = std::mem::take(&mut *seen.0.lock().unwrap());
    Called {
        result,
        events,
        took,
    }
}

/// The error's kind, status and attempts, at once.
#[track_caller]
fn assert_ended(error: &tower_rebound::Error, kind: ErrorKind, status: Option<u16>, attempts: u32) {
    assert_eq!(
        (
            error.kind(),
            error.status().map(|s| s.as_u16()),
            error.attempts()
        ),
        (kind, status, attempts),
        "{error}"
    );
}

fn preset(name: &str) -> Policy {
    Policy::preset(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn request(
    method: Method,
    server: &TestServer,
    path: &str,
    body: &'static str,
) -> Request<Full<Bytes>> {
    let mut request = Request::builder().method(method).uri(server.url(path));
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    request
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn get(server: &TestServer, path: &str) -> Request<Full<Bytes>> {
    request(Method::GET, server, path, "")
}

fn post(server: &TestServer, path: &str) -> Request<Full<Bytes>> {
    request(Method::POST, server, path, r#"{"amount":2000}"#)
}

fn codes(error: &Error) -> Vec<&str> {
    error.error_codes().collect()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn each_preset_loads_and_can_be_extended() {
    for name in ["github", "stripe", "azure", "google"] {
        let policy = preset(name);
        assert!(Policy::preset_names().contains(&name), "{name}");
        let over = Policy::from_toml_str(&format!(
            "extends = \"{name}\"\n[retry]\nmax_attempts = 2\n"
        ))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(over.max_attempts(), 2, "{name}");
        assert_eq!(policy.max_attempts(), 4, "{name}");
        // What the file does not say is the preset's.
        assert_eq!(over.poll_settings(), policy.poll_settings(), "{name}");
        assert_eq!(over.timeouts(), policy.timeouts(), "{name}");
    }
}

#[tokio::test]
async fn a_file_extending_github_keeps_its_rate_limit_rules() {
    let server = github::start().await;
    let policy =
        Policy::from_toml_str("extends = \"github\"\n[retry]\nmax_attempts = 2\n").unwrap();
    let (response, events, _) = call(policy, get(&server, "/limits/secondary/extends"))
        .await
        .response("secondary limit");
    assert_eq!(response.status(), 200);
    assert_eq!(events.retries, [(secs(1), WaitReason::RetryAfter)]);
}

// GitHub

#[tokio::test]
async fn github_a_200_is_answered_at_once_with_its_rate_limit_headers() {
    let server = github::start().await;
    let (response, events, _) = call(preset("github"), get(&server, "/repos/octo/hello"))
        .await
        .response("200");
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).attempts(), 1);
    assert_eq!(response.headers()["x-ratelimit-remaining"], "4999");
    assert_eq!(response.headers()["x-ratelimit-resource"], "core");
    assert!(events.retries.is_empty());
}

#[tokio::test]
async fn github_a_spent_primary_limit_is_waited_until_its_reset() {
    for kind in ["primary", "primary-429"] {
        let server = github::start().await;
        let (response, events, took) =
            call(preset("github"), get(&server, &format!("/limits/{kind}/a")))
                .await
                .response(kind);
        assert_eq!(response.status(), 200, "{kind}");
        assert_eq!(CallInfo::of(&response).attempts(), 2, "{kind}");
        assert_eq!(server.requests(), 2, "{kind}");
        // The reset is measured against the answer's Date: exactly 2 s.
        let reset = secs(github::RESET_SECS);
        assert_eq!(
            events.retries,
            [(reset, WaitReason::XRateLimitReset)],
            "{kind}"
        );
        assert!(took >= reset, "{kind}: took {took:?}");
    }
}

#[tokio::test]
async fn github_a_post_refused_by_a_spent_primary_limit_is_sent_again() {
    // GitHub did not process it: like a 429, a spent quota's 403 proves it,
    // so a POST is replayed after the reset.
    for kind in ["primary", "primary-429"] {
        let server = github::start().await;
        let (response, events, took) = call(
            preset("github"),
            post(&server, &format!("/limits/{kind}/post")),
        )
        .await
        .response(kind);
        assert_eq!(response.status(), 200, "{kind}");
        assert_eq!(CallInfo::of(&response).attempts(), 2, "{kind}");
        assert_eq!(server.requests(), 2, "{kind}");
        let reset = secs(github::RESET_SECS);
        assert_eq!(
            events.retries,
            [(reset, WaitReason::XRateLimitReset)],
            "{kind}"
        );
        assert!(took >= reset, "{kind}: took {took:?}");
    }
    // A secondary limit's 403 has units left: nothing proves the POST was
    // not processed, and it is not sent again.
    let server = github::start().await;
    let (error, events) = call(preset("github"), post(&server, "/limits/secondary/post"))
        .await
        .error("secondary");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(403));
    assert_eq!(error.attempts(), 1);
    assert_eq!(error.retry_refused(), Some(RetryRefusal::UnsafeMethod));
    assert!(events.retries.is_empty());
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn github_a_secondary_limit_waits_its_retry_after() {
    for kind in ["secondary", "secondary-429"] {
        let server = github::start().await;
        let (response, events, took) =
            call(preset("github"), get(&server, &format!("/limits/{kind}/a")))
                .await
                .response(kind);
        assert_eq!(response.status(), 200, "{kind}");
        assert_eq!(CallInfo::of(&response).attempts(), 2, "{kind}");
        let asked = secs(github::RETRY_AFTER_SECS);
        assert_eq!(events.retries, [(asked, WaitReason::RetryAfter)], "{kind}");
        assert!(took >= asked, "{kind}: took {took:?}");
    }
}

#[tokio::test]
async fn github_a_403_that_is_no_rate_limit_is_terminal() {
    let server = github::start().await;
    let (error, events) = call(preset("github"), get(&server, "/orgs/octo/audit-log"))
        .await
        .error("no permission");
    assert_eq!(error.kind(), ErrorKind::Terminal, "{error}");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(403));
    assert_eq!(error.attempts(), 1);
    let api = &error.api_errors()[0];
    assert_eq!(
        api.message(),
        Some("Resource not accessible by integration")
    );
    assert_eq!(
        api.more_info_url(),
        Some("https://docs.github.com/rest/orgs/orgs")
    );
    assert!(events.retries.is_empty());
}

#[tokio::test]
async fn github_a_validation_failure_reads_the_code_of_each_error() {
    let server = github::start().await;
    let request = request(
        Method::POST,
        &server,
        "/repos/octo/hello/issues",
        r#"{"body":"no title"}"#,
    );
    let (error, _) = call(preset("github"), request).await.error("422");
    assert_eq!(error.kind(), ErrorKind::Terminal, "{error}");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(422));
    assert_eq!(error.attempts(), 1);
    assert_eq!(codes(&error), ["missing_field"]);
    let [summary, field] = error.api_errors() else {
        panic!("{:?}", error.api_errors());
    };
    assert_eq!(summary.message(), Some("Validation Failed"));
    assert_eq!(
        summary.more_info_url(),
        Some("https://docs.github.com/rest/issues/issues#create-an-issue")
    );
    assert_eq!(field.code(), Some("missing_field"));
}

#[tokio::test]
async fn github_404_and_401_are_terminal_with_github_s_message() {
    let server = github::start().await;
    let (error, _) = call(preset("github"), get(&server, "/repos/octo/missing"))
        .await
        .error("404");
    assert_ended(&error, ErrorKind::Terminal, Some(404), 1);
    assert_eq!(error.api_errors()[0].message(), Some("Not Found"));

    let revoked = Request::get(server.url("/user"))
        .header("authorization", "Bearer revoked")
        .body(Full::default())
        .unwrap();
    let (error, _) = call(preset("github"), revoked).await.error("401");
    assert_ended(&error, ErrorKind::Terminal, Some(401), 1);
    assert_eq!(error.api_errors()[0].message(), Some("Bad credentials"));
}

// Stripe

#[tokio::test]
async fn stripe_a_200_is_answered_at_once() {
    let server = stripe::start().await;
    let (response, _, _) = call(preset("stripe"), get(&server, "/v1/customers/cus_1"))
        .await
        .response("200");
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).attempts(), 1);
}

#[tokio::test]
async fn stripe_a_missing_resource_is_terminal_with_its_code_type_and_link() {
    let server = stripe::start().await;
    let (error, _) = call(preset("stripe"), get(&server, "/v1/customers/cus_missing"))
        .await
        .error("404");
    assert_ended(&error, ErrorKind::Terminal, Some(404), 1);
    assert_eq!(codes(&error), ["resource_missing"]);
    let api = &error.api_errors()[0];
    assert_eq!(api.cause(), Some("invalid_request_error"));
    assert_eq!(
        api.more_info_url(),
        Some("https://stripe.com/docs/error-codes/resource-missing")
    );
}

#[tokio::test]
async fn stripe_a_declined_card_is_terminal_with_its_decline_code() {
    let server = stripe::start().await;
    let (error, _) = call(
        preset("stripe"),
        post(&server, "/v1/payment_intents/pi_declined/confirm"),
    )
    .await
    .error("402");
    assert_ended(&error, ErrorKind::Terminal, Some(402), 1);
    assert_eq!(codes(&error), ["card_declined", "insufficient_funds"]);
    assert_eq!(error.api_errors()[0].cause(), Some("card_error"));
}

#[tokio::test]
async fn stripe_a_failed_post_is_retried_with_the_same_idempotency_key() {
    let server = stripe::start().await;
    let (response, events, _) = call(preset("stripe"), post(&server, "/v1/charges/flaky/a"))
        .await
        .response("500 once");
    // The stand-in answers 400 to a retry with another key, or none.
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).attempts(), 2);
    // Stripe's api_error has a type and no code.
    assert!(events.codes.is_empty(), "{:?}", events.codes);
    assert_eq!(events.retries.len(), 1);
    assert_eq!(events.retries[0].1, WaitReason::Backoff);
    let key = response.headers()["idempotency-key"].to_str().unwrap();
    assert_eq!(key.len(), 36, "a UUID: {key}");

    // A key of the caller's own is kept.
    let server = stripe::start().await;
    let mut request = post(&server, "/v1/charges/flaky/own");
    request
        .headers_mut()
        .insert("idempotency-key", "order-1042".parse().unwrap());
    let (response, _, _) = call(preset("stripe"), request).await.response("own key");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["idempotency-key"], "order-1042");
}

#[tokio::test]
async fn stripe_without_an_idempotency_key_a_failed_post_is_not_replayed() {
    let server = stripe::start().await;
    let policy =
        Policy::from_toml_str("extends = \"stripe\"\n[retry]\nadd_idempotency_key = false\n")
            .unwrap();
    let (error, _) = call(policy, post(&server, "/v1/charges/flaky/a"))
        .await
        .error("500");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(500));
    assert_eq!(error.attempts(), 1);
    assert_eq!(error.retry_refused(), Some(RetryRefusal::UnsafeMethod));
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn stripe_an_idempotency_key_in_use_is_retried() {
    let server = stripe::start().await;
    let (response, events, _) = call(preset("stripe"), post(&server, "/v1/charges/in-use/a"))
        .await
        .response("409 in use");
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).attempts(), 2);
    assert_eq!(events.codes, [vec!["idempotency_key_in_use".to_owned()]]);
}

#[tokio::test]
async fn stripe_should_retry_overrides_the_status() {
    // true: a 409 that is no key in use is retried.
    let server = stripe::start().await;
    let (response, events, _) = call(preset("stripe"), post(&server, "/v1/charges/lock/a"))
        .await
        .response("409 + should retry");
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).attempts(), 2);
    assert_eq!(events.codes, [vec!["lock_timeout".to_owned()]]);

    // false: a 500, retryable by its status, is not.
    let server = stripe::start().await;
    let (error, events) = call(preset("stripe"), post(&server, "/v1/charges/replayed/a"))
        .await
        .error("500 + should not retry");
    assert_ended(&error, ErrorKind::Terminal, Some(500), 1);
    assert_eq!(error.rule(), Some("stripe-should-not-retry"));
    assert_eq!(codes(&error), Vec::<&str>::new());
    assert_eq!(error.api_errors()[0].cause(), Some("api_error"));
    assert!(events.retries.is_empty());
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn stripe_a_rate_limit_is_retried_after_a_backoff() {
    let server = stripe::start().await;
    let (response, events, _) = call(preset("stripe"), get(&server, "/v1/balance/a"))
        .await
        .response("429");
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).attempts(), 2);
    assert_eq!(events.codes, [vec!["rate_limit".to_owned()]]);
    assert_eq!(events.retries.len(), 1);
    assert_eq!(events.retries[0].1, WaitReason::Backoff);
}

// Azure

fn vm_start(server: &TestServer, vm: &str) -> Request<Full<Bytes>> {
    let path = azure::in_group(&format!("Microsoft.Compute/virtualMachines/{vm}/start"));
    request(
        Method::POST,
        server,
        &format!("{path}?api-version=2024-07-01"),
        "",
    )
}

/// Two polls, each after the server's Retry-After, and, when the result is
/// elsewhere, its fetch at once.
fn polled_at_retry_after(events: &Events, fetched: bool) {
    let asked = secs(azure::RETRY_AFTER_SECS);
    let mut expected = vec![(asked, PollWait::RetryAfter), (asked, PollWait::RetryAfter)];
    if fetched {
        expected.push((Duration::ZERO, PollWait::Interval));
    }
    assert_eq!(events.polls, expected);
}

#[tokio::test]
async fn azure_a_post_is_polled_at_azure_asyncoperation_then_its_location_fetched() {
    let server = azure::start().await;
    let (response, events, took) = call(preset("azure"), vm_start(&server, "vm-ok-a"))
        .await
        .response("succeeded");
    // The action has no result: its Location answers 204.
    assert_eq!(response.status(), 204);
    let info = CallInfo::of(&response);
    // Two status requests, then the fetch of the result.
    assert_eq!((info.attempts(), info.polls()), (1, 3));
    polled_at_retry_after(&events, true);
    assert!(took >= secs(2 * azure::RETRY_AFTER_SECS), "took {took:?}");
    let url = FinalUrl::of(&response).unwrap().to_string();
    assert!(
        url.contains("/providers/Microsoft.Compute/locations/westus/operationResults/vm-ok-a"),
        "{url}"
    );
}

#[tokio::test]
async fn azure_a_status_in_no_list_is_the_provider_s_word_for_running() {
    // The resource provider contract: any status but Succeeded, Failed and
    // Canceled means the operation runs.
    let server = azure::start().await;
    let (response, events, took) = call(preset("azure"), vm_start(&server, "vm-own-a"))
        .await
        .response("provisioning");
    assert_eq!(response.status(), 204);
    let info = CallInfo::of(&response);
    assert_eq!((info.attempts(), info.polls()), (1, 3));
    polled_at_retry_after(&events, true);
    assert!(took >= secs(2 * azure::RETRY_AFTER_SECS), "took {took:?}");
}

#[tokio::test]
async fn azure_a_put_answered_201_is_polled_then_the_resource_fetched() {
    let server = azure::start().await;
    let path = format!(
        "{}?api-version=2024-07-01",
        azure::in_group("Microsoft.Resources/deployments/deploy-a")
    );
    let request = request(Method::PUT, &server, &path, r#"{"properties":{}}"#);
    let (response, events, took) = call(preset("azure"), request).await.response("201");
    assert_eq!(response.status(), 200);
    let info = CallInfo::of(&response);
    assert_eq!((info.attempts(), info.polls()), (1, 3));
    polled_at_retry_after(&events, true);
    assert!(took >= secs(2 * azure::RETRY_AFTER_SECS), "took {took:?}");
    assert_eq!(
        FinalUrl::of(&response).map(ToString::to_string),
        Some(server.url(&path))
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains(r#""provisioningState":"Succeeded""#),
        "{body:?}"
    );
}

#[tokio::test]
async fn azure_a_failed_operation_is_terminal_with_its_error_code() {
    let server = azure::start().await;
    let (error, events) = call(preset("azure"), vm_start(&server, "vm-failed-a"))
        .await
        .error("failed");
    assert_eq!(error.kind(), ErrorKind::Terminal, "{error}");
    assert_eq!((error.attempts(), error.polls()), (1, 2));
    polled_at_retry_after(&events, false);
    assert!(
        error.to_string().contains("the operation failed"),
        "{error}"
    );
    // The error object's code, then each of its details[]'.
    assert_eq!(codes(&error), ["AllocationFailed", "SkuNotAvailable"]);
    assert_eq!(
        error.api_errors()[0].message(),
        Some(
            "Allocation failed. There is not enough capacity for the requested VM size in this region."
        )
    );
}

#[tokio::test]
async fn azure_a_canceled_operation_is_terminal_and_says_so() {
    let server = azure::start().await;
    let (error, events) = call(preset("azure"), vm_start(&server, "vm-canceled-a"))
        .await
        .error("canceled");
    assert_eq!(error.kind(), ErrorKind::Terminal, "{error}");
    assert_eq!((error.attempts(), error.polls()), (1, 2));
    polled_at_retry_after(&events, false);
    assert!(
        error.to_string().contains("the operation was canceled"),
        "{error}"
    );
    // Its error object, read as a failed operation's.
    assert_eq!(codes(&error), ["OperationCanceled"]);
    assert_eq!(
        error.api_errors()[0].message(),
        Some("The operation was canceled.")
    );
}

#[tokio::test]
async fn azure_an_operation_with_only_location_ends_at_the_resource_s_200() {
    // Azure's documentation: the Location URL answers 202 while the
    // operation runs, then 200 with the resource, which has no "status":
    // judged by its status code (poll.body_headers), that 200 is the result.
    let server = azure::start().await;
    let path = azure::in_group("Microsoft.Storage/storageAccounts/store-a");
    let request = request(
        Method::PUT,
        &server,
        &format!("{path}?api-version=2024-07-01"),
        r#"{"location":"westus"}"#,
    );
    let (response, events, took) = call(preset("azure"), request)
        .await
        .response("location only");
    assert_eq!(response.status(), 200);
    let info = CallInfo::of(&response);
    // Two polls of the Location; the PUT's route fetches nothing more.
    assert_eq!((info.attempts(), info.polls()), (1, 2));
    assert_eq!(server.requests(), 3);
    polled_at_retry_after(&events, false);
    assert!(took >= secs(2 * azure::RETRY_AFTER_SECS), "took {took:?}");
    let url = FinalUrl::of(&response).unwrap().to_string();
    assert!(
        url.contains("/providers/Microsoft.Storage/operations/store-a"),
        "{url}"
    );
    // Its body unread: no status body, and the resource streams as it came.
    assert!(StatusBody::of(&response).is_none());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains(r#""provisioningState":"Succeeded""#),
        "{body:?}"
    );
}

#[tokio::test]
async fn azure_an_error_s_details_are_read_after_it() {
    let server = azure::start().await;
    let path = azure::in_group("Microsoft.Resources/deployments/bad");
    let request = request(
        Method::PUT,
        &server,
        &format!("{path}?api-version=2024-07-01"),
        r#"{"properties":{}}"#,
    );
    let (error, _) = call(preset("azure"), request).await.error("400");
    assert_ended(&error, ErrorKind::Terminal, Some(400), 1);
    assert_eq!(
        codes(&error),
        ["InvalidTemplateDeployment", "QuotaExceeded"]
    );
}

#[tokio::test]
async fn azure_a_throttled_request_waits_its_retry_after() {
    let server = azure::start().await;
    let (response, events, took) = call(
        preset("azure"),
        get(&server, "/subscriptions/sub-1/resourcegroups/busy-a"),
    )
    .await
    .response("429");
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).attempts(), 2);
    let asked = secs(azure::RETRY_AFTER_SECS);
    assert_eq!(events.retries, [(asked, WaitReason::RetryAfter)]);
    assert_eq!(
        events.codes,
        [vec!["SubscriptionRequestsThrottled".to_owned()]]
    );
    assert!(took >= asked, "took {took:?}");
}

#[tokio::test]
async fn azure_a_missing_resource_group_is_terminal() {
    let server = azure::start().await;
    let (error, _) = call(
        preset("azure"),
        get(&server, "/subscriptions/sub-1/resourcegroups/missing"),
    )
    .await
    .error("404");
    assert_ended(&error, ErrorKind::Terminal, Some(404), 1);
    assert_eq!(codes(&error), ["ResourceGroupNotFound"]);
}

// Google

/// The `google` preset with a route that follows the Operations its
/// instances' methods answer with, as policies/README.md shows.
fn google_operations() -> Policy {
    Policy::from_toml_str(
        r#"
extends = "google"

[[routes]]
name = "instance-operations"
path_prefix = "/v1/projects/demo/instances"
methods = ["POST"]
[routes.poll]
status_url = "{origin}/{first_segment}/{name}"
"#,
    )
    .unwrap()
}

#[tokio::test]
async fn google_an_operation_is_followed_until_done_with_its_response() {
    let server = google::start().await;
    let (response, events, took) = call(
        google_operations(),
        post(&server, "/v1/projects/demo/instances/web-a:start"),
    )
    .await
    .response("done");
    assert_eq!(response.status(), 200);
    let info = CallInfo::of(&response);
    assert_eq!((info.attempts(), info.polls()), (1, 2));
    assert_eq!(
        FinalUrl::of(&response).map(ToString::to_string),
        Some(server.url("/v1/operations/start-web-a"))
    );
    // No Retry-After: the poll interval, 1 s then 1.5 s.
    assert_eq!(
        events.polls,
        [
            (secs(1), PollWait::Interval),
            (Duration::from_millis(1500), PollWait::Interval)
        ]
    );
    assert!(took >= Duration::from_millis(2500), "took {took:?}");
    let body = StatusBody::of(&response).cloned().unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&body).contains(r#""done":true"#),
        "{body:?}"
    );
    // The result is the Operation's response.
    let result = OperationResult::of(&response).cloned().unwrap_or_default();
    assert_eq!(
        String::from_utf8_lossy(&result),
        r#"{"@type":"type.googleapis.com/google.cloud.demo.v1.Instance","name":"projects/demo/instances/web-a","state":"RUNNING"}"#
    );
}

#[tokio::test]
async fn google_an_operation_done_with_an_error_is_terminal_with_its_status() {
    let server = google::start().await;
    let (error, _) = call(
        google_operations(),
        post(&server, "/v1/projects/demo/instances/fails-a:start"),
    )
    .await
    .error("failed");
    assert_eq!(error.kind(), ErrorKind::Terminal, "{error}");
    assert_eq!((error.attempts(), error.polls()), (1, 2));
    let api = &error.api_errors()[0];
    assert_eq!(
        (api.code(), api.cause()),
        (Some("9"), Some("FAILED_PRECONDITION"))
    );
    // Then the reason of the ErrorInfo among its details.
    assert_eq!(codes(&error), ["9", "INSTANCE_BEING_DELETED"]);
}

#[tokio::test]
async fn google_the_preset_alone_returns_an_operation_as_it_comes() {
    // Without a route naming where Operations start, the first 200 is the
    // answer: the preset cannot tell an Operation from another resource.
    let server = google::start().await;
    let (response, events, _) = call(
        preset("google"),
        post(&server, "/v1/projects/demo/instances/web-a:start"),
    )
    .await
    .response("operation");
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).polls(), 0);
    assert!(events.polls.is_empty());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains(r#""name":"operations/start-web-a""#),
        "{body:?}"
    );

    // Nor does the route touch what it does not take.
    let (response, _, _) = call(
        google_operations(),
        get(&server, "/v1/projects/demo/instances/web-1"),
    )
    .await
    .response("instance");
    assert_eq!(CallInfo::of(&response).polls(), 0);
    assert!(StatusBody::of(&response).is_none());
}

#[tokio::test]
async fn google_resource_exhausted_waits_its_retry_delay() {
    let server = google::start().await;
    let (response, events, took) = call(
        preset("google"),
        get(&server, "/v1/projects/demo/instances/busy-a"),
    )
    .await
    .response("429");
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).attempts(), 2);
    let asked = secs(google::RETRY_DELAY_SECS);
    assert_eq!(events.retries, [(asked, WaitReason::RetryDelay)]);
    assert!(took >= asked, "took {took:?}");
    // The HTTP code, then the ErrorInfo's reason.
    assert_eq!(
        events.codes,
        [vec!["429".to_owned(), "RATE_LIMIT_EXCEEDED".to_owned()]]
    );
}

#[tokio::test]
async fn google_unavailable_is_retried_after_at_least_a_second() {
    let server = google::start().await;
    let (response, events, took) = call(
        preset("google"),
        get(&server, "/v1/projects/demo/instances/flaky-a"),
    )
    .await
    .response("503");
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).attempts(), 2);
    let [(delay, WaitReason::Backoff)] = events.retries[..] else {
        panic!("{:?}", events.retries);
    };
    assert!(delay >= secs(1), "{delay:?}");
    assert!(took >= secs(1), "took {took:?}");
    assert_eq!(events.codes, [vec!["503".to_owned()]]);
}

#[tokio::test]
async fn google_internal_and_not_found_are_not_retried() {
    let server = google::start().await;
    for (path, status, cause) in [
        ("/v1/projects/demo/instances/broken", 500, "INTERNAL"),
        ("/v1/projects/demo/instances/missing", 404, "NOT_FOUND"),
    ] {
        let (error, events) = call(preset("google"), get(&server, path)).await.error(path);
        assert_eq!(
            (
                error.kind(),
                error.status().map(|s| s.as_u16()),
                error.attempts()
            ),
            (ErrorKind::Terminal, Some(status), 1),
            "{path}"
        );
        let code = status.to_string();
        assert_eq!(codes(&error), [code.as_str()], "{path}");
        assert_eq!(error.api_errors()[0].cause(), Some(cause), "{path}");
        assert!(events.retries.is_empty(), "{path}");
    }
}
