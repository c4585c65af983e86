//! The retry layer on paused time, against a scripted client: exact waits,
//! `Retry-After`, deadlines, timeouts, the budget and safe replay.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_rebound::retry::{Backoff, Jitter};
use tower_rebound::{CallInfo, ErrorKind, Policy, ResilienceLayer};
use tower_rebound_testkit::{Scripted, Step};

const SEED: u64 = 0x5eed;

fn policy(extra: &str) -> Policy {
    let text = format!(
        r#"
[classify]
success = [200]
retryable = [429, 500, 503]
terminal = [400, 404]

[retry]
max_attempts = 4
{extra}
[retry.backoff]
kind = "exponential"
initial = "100ms"
multiplier = 2
max = "5s"
jitter = "full"

[timeouts]
attempt = "10s"
total = "60s"
"#
    );
    Policy::from_toml_str(&text).unwrap()
}

fn request(method: Method) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("http://api.example/devices/1")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap()
}

/// Gaps between consecutive requests the script received.
fn waits(script: &Scripted) -> Vec<Duration> {
    let seen = script.seen();
    seen.windows(2).map(|w| w[1].at - w[0].at).collect()
}

/// SplitMix64, written out here independently of the library's copy.
fn reference_randoms(seed: u64, n: usize) -> Vec<u64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
        .collect()
}

/// Tokio's timer counts whole milliseconds: a wait lasts what was asked,
/// rounded up to the next millisecond.
fn assert_waited(actual: Duration, asked: Duration) {
    assert!(
        actual >= asked && actual < asked + Duration::from_millis(1),
        "waited {actual:?}, asked {asked:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_exact_schedule_for_a_seed() {
    let script = Scripted::new([
        Step::status(500),
        Step::status(500),
        Step::status(500),
        Step::status(200),
    ]);
    let client = ResilienceLayer::with_seed(policy(""), SEED).layer(script.clone());
    let response = client.oneshot(request(Method::GET)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).attempts(), 4);

    let backoff = Backoff::exponential(
        Duration::from_millis(100),
        2.0,
        Duration::from_secs(5),
        Jitter::Full,
    );
    let randoms = reference_randoms(SEED, 3);
    let mut previous = Duration::ZERO;
    let observed = waits(&script);
    assert_eq!(observed.len(), 3);
    for (retry, (actual, random)) in observed.iter().zip(randoms).enumerate() {
        let asked = backoff.delay(retry as u32 + 1, previous, random);
        assert_waited(*actual, asked);
        previous = asked;
    }
}

#[tokio::test(start_paused = true)]
async fn another_seed_gives_other_waits() {
    let run = |seed| async move {
        let script = Scripted::new([Step::status(500), Step::status(500), Step::status(200)]);
        let client = ResilienceLayer::with_seed(policy(""), seed).layer(script.clone());
        client.oneshot(request(Method::GET)).await.unwrap();
        waits(&script)
    };
    assert_eq!(run(1).await, run(1).await);
    assert_ne!(run(1).await, run(2).await);
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_is_waited_exactly() {
    let script = Scripted::new([
        Step::with_header(429, "retry-after", "3"),
        Step::status(200),
    ]);
    let client = ResilienceLayer::with_seed(policy(""), SEED).layer(script.clone());
    client.oneshot(request(Method::GET)).await.unwrap();
    assert_waited(waits(&script)[0], Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn retry_after_as_an_http_date_is_measured_against_the_response_date() {
    let script = Scripted::new([
        Step::Respond {
            status: 503,
            headers: vec![
                ("date", "Sun, 06 Nov 1994 08:49:37 GMT".into()),
                ("retry-after", "Sun, 06 Nov 1994 08:49:42 GMT".into()),
            ],
            body: Bytes::new(),
        },
        Step::status(200),
    ]);
    let client = ResilienceLayer::with_seed(policy(""), SEED).layer(script.clone());
    client.oneshot(request(Method::GET)).await.unwrap();
    assert_waited(waits(&script)[0], Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_huge_retry_after_ends_the_call_at_once() {
    let script = Scripted::new([Step::with_header(429, "retry-after", "99999999999")]);
    let client = ResilienceLayer::with_seed(policy(""), SEED).layer(script.clone());
    let started = Instant::now();
    let error = client.oneshot(request(Method::GET)).await.unwrap_err();
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "no sleeping into a wait that is refused"
    );
    assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    assert_eq!(error.attempts(), 1);
    assert_eq!(script.calls(), 1);
    assert!(error.to_string().contains("max_retry_after"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_ends_the_call_without_sleeping() {
    let policy = Policy::from_toml_str(
        "[classify]\nretryable = [500]\n[retry.backoff]\nkind = \"constant\"\ndelay = \"900ms\"\njitter = \"none\"\n\
         [timeouts]\ntotal = \"2s\"\n",
    )
    .unwrap();
    let script = Scripted::new([Step::status(500)]);
    let client = ResilienceLayer::with_seed(policy, SEED).layer(script.clone());
    let started = Instant::now();
    let error = client.oneshot(request(Method::GET)).await.unwrap_err();
    // Attempts at 0, 0.9 and 1.8 s; the next would start at 2.7 s.
    assert_eq!(started.elapsed(), Duration::from_millis(1800));
    assert_eq!(error.kind(), ErrorKind::DeadlineExceeded);
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.status().map(|s| s.as_u16()), Some(500));
}

#[tokio::test(start_paused = true)]
async fn the_total_deadline_cuts_an_attempt_in_flight() {
    let script = Scripted::new([Step::Hang]);
    let policy =
        Policy::from_toml_str("[timeouts]\nattempt = \"10s\"\ntotal = \"2500ms\"\n").unwrap();
    let client = ResilienceLayer::with_seed(policy, SEED).layer(script.clone());
    let started = Instant::now();
    let error = client.oneshot(request(Method::GET)).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_millis(2500));
    assert_eq!(error.kind(), ErrorKind::DeadlineExceeded);
    assert_eq!(error.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_retried() {
    let script = Scripted::new([Step::Hang, Step::Hang, Step::status(200)]);
    let text = "[retry.backoff]\njitter = \"none\"\ninitial = \"100ms\"\n[timeouts]\nattempt = \"1s\"\ntotal = \"60s\"\n";
    let client = ResilienceLayer::with_seed(Policy::from_toml_str(text).unwrap(), SEED)
        .layer(script.clone());
    let started = Instant::now();
    let response = client.oneshot(request(Method::GET)).await.unwrap();
    assert_eq!(CallInfo::of(&response).attempts(), 3);
    // 1 s timeout, 100 ms wait, 1 s timeout, 200 ms wait.
    assert_eq!(started.elapsed(), Duration::from_millis(2300));
}

#[tokio::test(start_paused = true)]
async fn timeouts_of_every_attempt_end_in_timeout_with_the_cause() {
    let script = Scripted::new([Step::Hang]);
    let text = "[retry]\nmax_attempts = 2\n[timeouts]\nattempt = \"1s\"\n";
    let client = ResilienceLayer::with_seed(Policy::from_toml_str(text).unwrap(), SEED)
        .layer(script.clone());
    let error = client.oneshot(request(Method::GET)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.attempts(), 2);
    assert!(
        error
            .to_string()
            .contains("no answer within 1s (timeouts.attempt)"),
        "{error}"
    );
    assert!(!error.to_string().contains("reachable"), "{error}");
    let source = std::error::Error::source(&error).unwrap();
    assert!(source.is::<tower_rebound::AttemptTimedOut>(), "{source}");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_leaves_nothing_behind() {
    let script = Scripted::new([Step::status(500), Step::status(200)]);
    let client = ResilienceLayer::with_seed(policy(""), SEED).layer(script.clone());
    let handles_before = script.handles();
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();

    let call = client.clone().oneshot(request(Method::GET));
    // The first attempt fails and the call starts waiting; then it is dropped.
    let outcome = tokio::time::timeout(Duration::from_millis(1), call).await;
    assert!(outcome.is_err(), "the call is still waiting");
    assert_eq!(script.calls(), 1);
    assert_eq!(
        script.handles(),
        handles_before,
        "the call's clone of the client is gone"
    );
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        tasks_before
    );
    // Nothing wakes up later to send the retry.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn post_is_sent_once_unless_it_is_safe_to_replay() {
    let run = |method: Method, key: Option<&'static str>, steps: Vec<Step>, extra: &'static str| async move {
        let script = Scripted::new(steps);
        let client = ResilienceLayer::with_seed(policy(extra), SEED).layer(script.clone());
        let mut req = request(method);
        if let Some(key) = key {
            req.headers_mut()
                .insert("idempotency-key", key.parse().unwrap());
        }
        let result = client.oneshot(req).await;
        (script, result)
    };
    let (script, result) = run(Method::POST, None, vec![Step::status(500)], "").await;
    assert_eq!(script.calls(), 1);
    let error = result.unwrap_err();
    assert_eq!(
        (error.kind(), error.attempts()),
        (ErrorKind::RetriesExhausted, 1)
    );

    let (script, result) = run(
        Method::POST,
        Some("k-1"),
        vec![Step::status(500), Step::status(200)],
        "",
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(script.calls(), 2);

    // 429 says the request was not processed; a refused connection never sent it.
    let (script, result) = run(
        Method::POST,
        None,
        vec![Step::status(429), Step::status(200)],
        "",
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(script.calls(), 2);
    let (script, result) = run(
        Method::PATCH,
        None,
        vec![
            Step::Fail(std::io::ErrorKind::ConnectionRefused),
            Step::status(200),
        ],
        "",
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(script.calls(), 2);
    let (script, _) = run(
        Method::PATCH,
        None,
        vec![Step::Fail(std::io::ErrorKind::ConnectionReset)],
        "",
    )
    .await;
    assert_eq!(script.calls(), 1);

    let (script, result) = run(
        Method::POST,
        None,
        vec![Step::status(500), Step::status(200)],
        "non_idempotent = \"always\"",
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_added_idempotency_key_is_the_same_on_every_attempt() {
    let text = "[classify]\nretryable = [500]\n[retry]\nadd_idempotency_key = true\n";
    let script = Scripted::new([Step::status(500), Step::status(500), Step::status(200)]);
    let client = ResilienceLayer::with_seed(Policy::from_toml_str(text).unwrap(), SEED)
        .layer(script.clone());
    client.oneshot(request(Method::POST)).await.unwrap();
    let keys: Vec<String> = script
        .seen()
        .iter()
        .map(|s| s.headers["idempotency-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| k == &keys[0]));
    assert!(is_uuid_v4(&keys[0]), "not a version 4 UUID: {}", keys[0]);

    // A key the caller set is kept; idempotent methods get none.
    let script = Scripted::new([Step::status(200)]);
    let client = ResilienceLayer::new(Policy::from_toml_str(text).unwrap()).layer(script.clone());
    let mut req = request(Method::POST);
    req.headers_mut()
        .insert("idempotency-key", "mine".parse().unwrap());
    client.clone().oneshot(req).await.unwrap();
    client.oneshot(request(Method::GET)).await.unwrap();
    let seen = script.seen();
    assert_eq!(seen[0].headers["idempotency-key"], "mine");
    assert!(!seen[1].headers.contains_key("idempotency-key"));
}

/// Whether `key` is an RFC 9562 version 4 UUID in its lowercase text form.
fn is_uuid_v4(key: &str) -> bool {
    let groups: Vec<&str> = key.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    lengths == [8, 4, 4, 4, 12]
        && key
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b'])
}

#[tokio::test(start_paused = true)]
async fn layers_with_the_same_seed_add_different_keys() {
    // Jitter repeats under a seed; idempotency keys must not, or a key seen
    // once would tell the next.
    let text = "[classify]\nretryable = [500]\n[retry]\nadd_idempotency_key = true\n";
    let mut keys = Vec::new();
    for _ in 0..2 {
        let script = Scripted::new([Step::status(200), Step::status(200)]);
        let client = ResilienceLayer::with_seed(Policy::from_toml_str(text).unwrap(), SEED)
            .layer(script.clone());
        client.clone().oneshot(request(Method::POST)).await.unwrap();
        client.oneshot(request(Method::POST)).await.unwrap();
        for seen in script.seen() {
            keys.push(seen.headers["idempotency-key"].to_str().unwrap().to_owned());
        }
    }
    assert_eq!(keys.len(), 4);
    for key in &keys {
        assert!(is_uuid_v4(key), "not a version 4 UUID: {key}");
    }
    let distinct: std::collections::HashSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), 4, "keys repeat: {keys:?}");
}

/// The inverse of SplitMix64's output mix.
fn unmix(mut z: u64) -> u64 {
    fn inverse(a: u64) -> u64 {
        // Newton's iteration for the inverse of an odd number modulo 2^64.
        let mut x = a;
        for _ in 0..6 {
            x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        }
        x
    }
    z = z ^ (z >> 31) ^ (z >> 62);
    z = z.wrapping_mul(inverse(0x94D0_49BB_1331_11EB));
    z = z ^ (z >> 27) ^ (z >> 54);
    z = z.wrapping_mul(inverse(0xBF58_476D_1CE4_E5B9));
    z ^ (z >> 30) ^ (z >> 60)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key_halves(key: &str) -> (u64, u64) {
    let hex: String = key.chars().filter(|c| *c != '-').collect();
    let all = u128::from_str_radix(&hex, 16).unwrap();
    ((all >> 64) as u64, all as u64)
}

#[tokio::test(start_paused = true)]
async fn an_observed_key_does_not_tell_the_next() {
    // Were keys two outputs of a SplitMix64 generator (as jitter is), one key
    // would give away its state: try every value of the 6 bits the UUID
    // version and variant overwrite, and predict the next key.
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    assert_eq!(unmix(mix(0x0123_4567_89ab_cdef)), 0x0123_4567_89ab_cdef);
    let text = "[classify]\nretryable = [500]\n[retry]\nadd_idempotency_key = true\n";
    let script = Scripted::new([Step::status(200), Step::status(200)]);
    let client = ResilienceLayer::with_seed(Policy::from_toml_str(text).unwrap(), SEED)
        .layer(script.clone());
    client.clone().oneshot(request(Method::POST)).await.unwrap();
    client.oneshot(request(Method::POST)).await.unwrap();
    let seen = script.seen();
    let first = key_halves(seen[0].headers["idempotency-key"].to_str().unwrap());
    let second = key_halves(seen[1].headers["idempotency-key"].to_str().unwrap());
    let known = |x: u64| x & !(0xf << 12);
    let known_low = |x: u64| x & !(0b11 << 62);
    let mut predictions = 0;
    for nibble in 0..16u64 {
        let high = known(first.0) | (nibble << 12);
        let state = unmix(high);
        if known_low(mix(state.wrapping_add(GAMMA))) != known_low(first.1) {
            continue;
        }
        predictions += 1;
        let next = (
            mix(state.wrapping_add(GAMMA.wrapping_mul(2))),
            mix(state.wrapping_add(GAMMA.wrapping_mul(3))),
        );
        assert_ne!(
            (known(next.0), known_low(next.1)),
            (known(second.0), known_low(second.1)),
            "the second key follows from the first"
        );
    }
    // A random 128-bit key matches a SplitMix64 pair for some nibble with
    // odds of 16 in 2^62.
    assert_eq!(predictions, 0);
}

#[tokio::test(start_paused = true)]
async fn the_budget_holds_an_outage_to_its_capacity() {
    // A fixed bucket (min_reserve at the capacity): not scaled to the rate.
    let text = "[classify]\nretryable = [500]\n[retry]\nmax_attempts = 4\n[retry.budget]\ncapacity = 5\n\
         min_reserve = 5\n[circuit_breaker]\nenabled = false\n";
    let policy = Policy::from_toml_str(text).unwrap();
    let script = Scripted::new([Step::status(500)]);
    let layer = ResilienceLayer::with_seed(policy.clone(), SEED);
    let budget = std::sync::Arc::clone(layer.runtime().budget());
    let client = layer.layer(script.clone());
    let mut kinds = Vec::new();
    for _ in 0..100 {
        kinds.push(
            client
                .clone()
                .oneshot(request(Method::GET))
                .await
                .unwrap_err()
                .kind(),
        );
    }
    assert_eq!(
        script.calls(),
        105,
        "100 calls and the 5 retries the capacity allows"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == ErrorKind::BudgetExhausted)
            .count(),
        99
    );
    assert_eq!(kinds[0], ErrorKind::RetriesExhausted);
    assert_eq!(budget.available(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_new_process_spends_its_minimum_reserve_in_an_outage() {
    // The presets' scaled bucket: a process with no calls behind it holds
    // min_reserve (3), whatever its capacity.
    let text = "[classify]\nretryable = [500]\n[retry]\nmax_attempts = 4\n[circuit_breaker]\nenabled = false\n";
    let policy = Policy::from_toml_str(text).unwrap();
    let script = Scripted::new([Step::status(500)]);
    let layer = ResilienceLayer::with_seed(policy.clone(), SEED);
    let budget = std::sync::Arc::clone(layer.runtime().budget());
    let client = layer.layer(script.clone());
    for _ in 0..100 {
        client
            .clone()
            .oneshot(request(Method::GET))
            .await
            .unwrap_err();
    }
    assert_eq!(script.calls(), 103, "100 calls and the 3 retries");
    assert_eq!(budget.granted(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_succeeds_gives_its_token_back() {
    // Three tokens; each call fails once and succeeds on its retry. Without
    // the refund the fourth call would find the bucket empty.
    let text = "[classify]\nretryable = [500]\n[retry]\nmax_attempts = 2\n[circuit_breaker]\nenabled = false\n";
    let policy = Policy::from_toml_str(text).unwrap();
    let steps: Vec<Step> = (0..10)
        .flat_map(|_| [Step::status(500), Step::status(200)])
        .collect();
    let script = Scripted::new(steps);
    let layer = ResilienceLayer::with_seed(policy.clone(), SEED);
    let budget = std::sync::Arc::clone(layer.runtime().budget());
    let client = layer.layer(script.clone());
    for call in 0..10 {
        let response = client.clone().oneshot(request(Method::GET)).await;
        assert!(response.is_ok(), "call {call}: {:?}", response.err());
    }
    assert_eq!(budget.granted(), 10);
    assert_eq!(budget.refused(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_streaming_body_is_replayed_from_its_recording() {
    let policy =
        Policy::from_toml_str("[classify]\nretryable = [500]\n[retry]\nbuffer_max = \"1KiB\"\n")
            .unwrap();
    let script = Scripted::new([Step::status(500), Step::status(200)]);
    let client = ResilienceLayer::with_seed(policy.clone(), SEED).layer(script.clone());
    let body = policy.buffer_body(Full::new(Bytes::from_static(b"streamed body")));
    let req = Request::put("http://api.example/x").body(body).unwrap();
    client.oneshot(req).await.unwrap();
    let bodies: Vec<Bytes> = script.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(
        bodies,
        [
            Bytes::from_static(b"streamed body"),
            Bytes::from_static(b"streamed body")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_too_large_to_replay_is_sent_once_and_says_so() {
    let policy =
        Policy::from_toml_str("[classify]\nretryable = [500]\n[retry]\nbuffer_max = 4\n").unwrap();
    let script = Scripted::new([Step::status(500), Step::status(200)]);
    let client = ResilienceLayer::with_seed(policy.clone(), SEED).layer(script.clone());
    let body = policy.buffer_body(Full::new(Bytes::from_static(b"longer than four bytes")));
    let req = Request::put("http://api.example/x").body(body).unwrap();
    let error = client.oneshot(req).await.unwrap_err();
    assert_eq!(script.calls(), 1);
    assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    assert!(error.to_string().contains("cannot be replayed"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn terminal_and_unsupported_are_never_retried() {
    for (status, kind) in [(404, ErrorKind::Terminal), (400, ErrorKind::Terminal)] {
        let script = Scripted::new([Step::status(status), Step::status(200)]);
        let client = ResilienceLayer::with_seed(policy(""), SEED).layer(script.clone());
        let error = client.oneshot(request(Method::GET)).await.unwrap_err();
        assert_eq!(
            (error.kind(), error.attempts(), script.calls()),
            (kind, 1, 1)
        );
    }
    let script = Scripted::new([Step::status(503), Step::status(200)]);
    let client = ResilienceLayer::new(Policy::preset("connio").unwrap()).layer(script.clone());
    let error = client.oneshot(request(Method::GET)).await.unwrap_err();
    assert_eq!((error.kind(), script.calls()), (ErrorKind::Unsupported, 1));
}

#[tokio::test(start_paused = true)]
async fn classify_alone_bounds_an_attempt() {
    let run = |text: &'static str| async move {
        let policy = Policy::from_toml_str(text).unwrap();
        let client = policy.classify_layer().layer(Scripted::new([Step::Hang]));
        let started = Instant::now();
        let error = client.oneshot(request(Method::GET)).await.unwrap_err();
        (started.elapsed(), error)
    };
    let (elapsed, error) = run("[timeouts]\nattempt = \"3s\"\ntotal = \"10s\"\n").await;
    assert_eq!(elapsed, Duration::from_secs(3));
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(
        std::error::Error::source(&error)
            .unwrap()
            .is::<tower_rebound::AttemptTimedOut>()
    );
    // The end of the whole call comes first: the attempt ends there.
    let (elapsed, error) = run("[timeouts]\nattempt = \"3s\"\ntotal = \"2s\"\n").await;
    assert_eq!(elapsed, Duration::from_secs(2));
    assert_eq!(error.kind(), ErrorKind::DeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn a_retry_never_outlives_the_call() {
    // Attempts of up to 3 s each under a 5 s deadline, 1 s apart: the second
    // attempt starts at 4 s and is cut at 5 s, not at 7 s.
    let text = "[retry.backoff]\nkind = \"constant\"\ndelay = \"1s\"\njitter = \"none\"\n\
                [timeouts]\nattempt = \"3s\"\ntotal = \"5s\"\n";
    let script = Scripted::new([Step::Hang]);
    let client = ResilienceLayer::with_seed(Policy::from_toml_str(text).unwrap(), SEED)
        .layer(script.clone());
    let started = Instant::now();
    let error = client.oneshot(request(Method::GET)).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(error.kind(), ErrorKind::DeadlineExceeded);
    assert_eq!(error.attempts(), 2);
    assert_eq!(script.calls(), 2);
}
