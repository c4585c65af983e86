//! Calls over HTTP that make every instrument of the shipped listeners
//! record: shared by `tests/metrics.rs` and `tests/otel.rs`, which read
//! what each listener made of them.

#![allow(dead_code)] // each user takes its part

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_rebound::breaker::BreakerHandle;
use tower_rebound::events::Listener;
use tower_rebound::{ErrorKind, Policy, ResilienceLayer};
use tower_rebound_testkit::{TestServer, api_error, respond};

/// `/flaky/N/KEY` fails N times with 500 then answers 200; `/down` always
/// answers 500; `/throttle` answers 429 asking to wait an hour; `/write` is
/// accepted with a status URL that is done on the first poll; anything else
/// is 200.
pub async fn server() -> TestServer {
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    TestServer::start(move |request| {
        let seen = Arc::clone(&seen);
        async move {
            let path = request.uri().path().to_owned();
            let count = {
                let mut seen = seen.lock().unwrap();
                let n = seen.entry(path.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            match parts.as_slice() {
                ["flaky", n, _] if count <= n.parse::<u32>().unwrap() => {
                    api_error(500, &[("InternalError", "Try again")])
                }
                ["down"] => api_error(500, &[("Down", "Down")]),
                ["throttle"] => {
                    let mut response = api_error(429, &[("TooManyRequests", "Later")]);
                    response
                        .headers_mut()
                        .insert("retry-after", "3600".parse().unwrap());
                    response
                }
                ["write"] => {
                    let mut response = respond(202, "");
                    response
                        .headers_mut()
                        .insert("location", "/ops/1".parse().unwrap());
                    response
                }
                _ => respond(200, "{}"),
            }
        }
    })
    .await
}

/// The `connio` preset with waits of a millisecond, and `more` TOML after.
pub fn policy(more: &str) -> Policy {
    Policy::from_toml_str(&format!(
        "extends = \"connio\"\n{more}\n[retry.backoff]\ninitial = \"1ms\"\nmax = \"5ms\"\n[poll]\ninterval = \"1ms\"\n"
    ))
    .unwrap()
}

fn client(
    layer: &ResilienceLayer,
) -> tower_rebound::Resilience<
    Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
> {
    layer.layer(Client::builder(TokioExecutor::new()).build_http())
}

async fn send(layer: &ResilienceLayer, method: http::Method, url: &str) -> Result<u16, ErrorKind> {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::default())
        .unwrap();
    client(layer)
        .oneshot(request)
        .await
        .map(|response| response.status().as_u16())
        .map_err(|error| error.kind())
}

/// 500, 500, then 200: two retries for a status, three attempts, one call.
pub async fn retried_twice(server: &TestServer, listener: impl Listener) {
    let layer = ResilienceLayer::new(policy("").with_listener(listener));
    let url = server.url("/flaky/2/retried");
    assert_eq!(send(&layer, http::Method::GET, &url).await, Ok(200));
}

/// A 500 with a budget of one retry: the second retry is refused.
pub async fn budget_refused(server: &TestServer, listener: impl Listener) {
    let more = "[retry.budget]\ncapacity = 1\n[circuit_breaker]\nenabled = false\n";
    let layer = ResilienceLayer::new(policy(more).with_listener(listener));
    let url = server.url("/down");
    let sent = send(&layer, http::Method::GET, &url).await;
    assert_eq!(sent, Err(ErrorKind::BudgetExhausted));
}

/// A port nothing listens on: two attempts that get no answer, one retry
/// for the transport. Returns the port.
pub async fn unreachable(listener: impl Listener) -> u16 {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let more = "[retry]\nmax_attempts = 2\n[circuit_breaker]\nenabled = false\n";
    let layer = ResilienceLayer::new(policy(more).with_listener(listener));
    let url = format!("http://127.0.0.1:{port}/devices");
    let sent = send(&layer, http::Method::GET, &url).await;
    assert_eq!(sent, Err(ErrorKind::Transport));
    port
}

/// Two 500s open the host's breaker; a third call is rejected unsent.
/// Returns the breakers, for the caller to close it.
pub async fn breaker_opened(server: &TestServer, listener: impl Listener) -> BreakerHandle {
    let more = "[retry]\nmax_attempts = 1\n[circuit_breaker]\nconsecutive_failures = 2\nopen_for = \"1h\"\nmax_open_for = \"1h\"\n";
    let layer = ResilienceLayer::new(policy(more).with_listener(listener));
    let url = server.url("/down");
    let before = server.requests();
    for _ in 0..2 {
        let sent = send(&layer, http::Method::GET, &url).await;
        assert_eq!(sent, Err(ErrorKind::RetriesExhausted));
    }
    let rejected = send(&layer, http::Method::GET, &url).await;
    assert_eq!(rejected, Err(ErrorKind::CircuitOpen));
    assert_eq!(server.requests() - before, 2, "the third call was not sent");
    layer.breakers()
}

/// A POST that the route `writes` takes, accepted and polled once.
pub async fn polled_on_a_route(server: &TestServer, listener: impl Listener) {
    let more = "[[routes]]\nname = \"writes\"\nmethods = [\"POST\"]\n";
    let layer = ResilienceLayer::new(policy(more).with_listener(listener));
    let url = server.url("/write");
    assert_eq!(send(&layer, http::Method::POST, &url).await, Ok(200));
}

/// One call to 127.0.0.1 and one to localhost (the same server).
pub async fn two_hosts(server: &TestServer, policy: Policy) {
    let layer = ResilienceLayer::new(policy);
    let port = server.addr().port();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("http://{host}:{port}/devices");
        assert_eq!(send(&layer, http::Method::GET, &url).await, Ok(200));
    }
}

/// A shared rate limit whose store (the in-memory stand-in for Redis) is
/// unreachable for a while: one fallback, then back on the store. Returns
/// the store's round trips.
pub async fn rate_limit_store_lost_and_found(listener: impl Listener) -> u64 {
    use tower_rebound::rate_limit::{MemoryStore, RateLimitSettings};
    use tower_rebound_testkit::{Scripted, Step};

    let store = Arc::new(MemoryStore::new());
    let limit = RateLimitSettings::builder()
        .per_second(100.0)
        .key("billing")
        .build()
        .expect("valid settings");
    let policy = Policy::preset("connio")
        .expect("the preset")
        .with_rate_limit_store(limit, store.clone())
        .with_listener(listener);
    let client = ResilienceLayer::new(policy).layer(Scripted::new([Step::status(200)]));
    let call = || {
        let request = http::Request::get("http://api.example/")
            .body(Full::<Bytes>::default())
            .expect("a request");
        client.clone().oneshot(request)
    };
    call().await.expect("through the store");
    store.set_unreachable(true);
    call().await.expect("on the local limit");
    store.set_unreachable(false);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    call().await.expect("through the store again");
    store.round_trips()
}

/// Calls, 40 at a time, to a host that answers each in 2 ms under an
/// adaptive concurrency limit that starts at 5: the limit grows.
pub async fn concurrency_moved(listener: impl Listener) {
    use tower_rebound::concurrency::ConcurrencySettings;

    let limit = ConcurrencySettings::builder()
        .adaptive(true)
        .initial(5)
        .queue(100)
        .build()
        .expect("valid settings");
    let policy = Policy::preset("connio")
        .expect("the preset")
        .with_concurrency(limit)
        .with_listener(listener);
    let host = tower::service_fn(|_: http::Request<Full<Bytes>>| async {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
    });
    let client = ResilienceLayer::new(policy).layer(host);
    for _ in 0..10 {
        let calls: Vec<_> = (0..40)
            .map(|_| {
                let request = http::Request::get("http://api.example/")
                    .body(Full::<Bytes>::default())
                    .expect("a request");
                tokio::spawn(client.clone().oneshot(request))
            })
            .collect();
        for call in calls {
            call.await.expect("a task").expect("an answer");
        }
    }
}
