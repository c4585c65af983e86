//! Rules on a success body: a `200` whose body says it failed becomes a
//! failure with its codes; one that does not is returned, the bytes read in
//! `SuccessBody` and the rest in its body. Over real HTTP on 127.0.0.1,
//! through the assembled stack and a stack of the standalone layers.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{STACKS, Stack, send};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tower_rebound::classify::SuccessBody;
use tower_rebound::{CallInfo, Error, ErrorKind, Policy};
use tower_rebound_testkit::{TestServer, respond};

/// A Slack-like API: every answer is a `200` that says in its body whether
/// it worked. `/limited/NAME` is rate limited once, then works.
async fn slack() -> TestServer {
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    TestServer::start(move |request| {
        let seen = Arc::clone(&seen);
        async move {
            let path = request.uri().path().to_owned();
            let n = {
                let mut seen = seen.lock().unwrap();
                let n = seen.entry(path.clone()).or_insert(0);
                *n += 1;
                *n
            };
            match path.as_str() {
                "/ok" => respond(200, r#"{"ok":true,"channel":"C1"}"#),
                "/auth" => respond(200, r#"{"ok":false,"error":"invalid_auth"}"#),
                "/created" => respond(201, r#"{"ok":false,"error":"invalid_auth"}"#),
                "/big" => respond(
                    200,
                    format!(r#"{{"ok":true,"pad":"{}"}}"#, "x".repeat(5000)),
                ),
                _ if path.starts_with("/limited/") && n == 1 => {
                    let mut response = respond(200, r#"{"ok":false,"error":"ratelimited"}"#);
                    response
                        .headers_mut()
                        .insert("retry-after", "0".parse().unwrap());
                    response
                }
                _ => respond(200, r#"{"ok":true}"#),
            }
        }
    })
    .await
}

fn policy() -> Policy {
    Policy::from_toml_str(
        "[error_body]\nformat = \"fields\"\nmax_bytes = 1024\n\
         [[error_body.fields]]\ncode = \"/error\"\n\
         [[classify.rules]]\nname = \"slack-limited\"\nstatus = 200\ncode = \"ratelimited\"\nclass = \"retryable\"\n\
         [[classify.rules]]\nstatus = 200\ncode = [\"invalid_auth\", \"channel_not_found\"]\nclass = \"terminal\"\n\
         [retry]\nmax_attempts = 3\n[retry.backoff]\ninitial = \"1ms\"\nmax = \"2ms\"\n",
    )
    .unwrap()
}

async fn call(
    stack: Stack,
    server: &TestServer,
    path: &str,
) -> Result<http::Response<Incoming>, Error> {
    let request = Request::get(server.url(path))
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(stack, &policy(), request).await
}

#[tokio::test]
async fn a_200_that_says_it_failed_is_terminal_with_its_code() {
    for stack in STACKS {
        let server = slack().await;
        let error = call(stack, &server, "/auth").await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Terminal, "{stack:?}: {error}");
        assert_eq!(error.status().map(|s| s.as_u16()), Some(200), "{stack:?}");
        assert_eq!(
            error.error_codes().collect::<Vec<_>>(),
            ["invalid_auth"],
            "{stack:?}"
        );
        assert_eq!(&error.body()[..], br#"{"ok":false,"error":"invalid_auth"}"#);
        assert_eq!(error.attempts(), 1, "{stack:?}");
        assert_eq!(server.requests(), 1, "{stack:?}");
    }
}

#[tokio::test]
async fn a_200_that_says_it_is_rate_limited_is_retried() {
    for stack in STACKS {
        let server = slack().await;
        let response = call(stack, &server, "/limited/a")
            .await
            .unwrap_or_else(|e| panic!("{stack:?}: {e}"));
        assert_eq!(CallInfo::of(&response).attempts(), 2, "{stack:?}");
        let read = SuccessBody::of(&response).cloned().unwrap();
        assert_eq!(&read.bytes[..], br#"{"ok":true}"#, "{stack:?}");
        assert!(!read.truncated, "{stack:?}");
        assert_eq!(server.requests(), 2, "{stack:?}");
    }
}

#[tokio::test]
async fn a_200_that_worked_is_returned_with_what_was_read() {
    for stack in STACKS {
        let server = slack().await;
        let response = call(stack, &server, "/ok").await.unwrap();
        assert_eq!(response.status(), 200, "{stack:?}");
        let read = SuccessBody::of(&response).cloned().unwrap();
        assert_eq!(&read.bytes[..], br#"{"ok":true,"channel":"C1"}"#);
        let rest = response.into_body().collect().await.unwrap().to_bytes();
        assert!(rest.is_empty(), "{stack:?}: the body was read whole");
    }
}

#[tokio::test]
async fn a_long_success_body_is_read_to_the_cap_and_the_rest_streams() {
    for stack in STACKS {
        let server = slack().await;
        let response = call(stack, &server, "/big").await.unwrap();
        let read = SuccessBody::of(&response).cloned().unwrap();
        assert!(read.truncated, "{stack:?}");
        assert!(read.bytes.len() >= 1024, "{stack:?}: {}", read.bytes.len());
        let rest = response.into_body().collect().await.unwrap().to_bytes();
        let whole = [&read.bytes[..], &rest[..]].concat();
        let expected = format!(r#"{{"ok":true,"pad":"{}"}}"#, "x".repeat(5000));
        assert_eq!(whole, expected.as_bytes(), "{stack:?}: nothing lost");
    }
}

#[tokio::test]
async fn a_success_of_a_status_no_rule_names_is_not_read() {
    for stack in STACKS {
        let server = slack().await;
        let response = call(stack, &server, "/created").await.unwrap();
        assert_eq!(response.status(), 201, "{stack:?}");
        assert!(SuccessBody::of(&response).is_none(), "{stack:?}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"ok":false,"error":"invalid_auth"}"#);
    }
}
