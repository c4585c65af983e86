//! A policy swapped while calls run: under constant load, 100 swaps lose no
//! call, no call mixes two policies, and an open breaker stays open across
//! them. On paused time, against a client double that tells each call's
//! attempts apart.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_rebound::{ErrorKind, Policy, ReloadableLayer};

/// When each call's attempts arrived, by the call's `x-call` header.
type Seen = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// `http://load.example` answers each call's first attempt 429 and the next
/// 200; `http://dead.example` answers 500 to everything.
fn client(
    seen: Seen,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |request: Request<Full<Bytes>>| {
        let seen = Arc::clone(&seen);
        async move {
            let call = request
                .headers()
                .get("x-call")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned();
            let attempts = {
                let mut seen = seen.lock().unwrap();
                let times = seen.entry(call).or_default();
                times.push(Instant::now());
                times.len()
            };
            let dead = request.uri().host() == Some("dead.example");
            // A 429 says nothing of the host to its breaker: the load's
            // first attempts trip nothing.
            let status = match (dead, attempts) {
                (true, _) => 500,
                (false, 1) => 429,
                (false, _) => 200,
            };
            let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(response)
        }
    })
}

/// Two plans that differ in their retry wait: 10 ms or 20 ms, no jitter.
/// Their breakers trip on 2 failures in a row unless `trip` says otherwise.
fn plan(wait_ms: u64, trip: u32) -> Policy {
    Policy::from_toml_str(&format!(
        "[classify]\nsuccess = [200]\nretryable = [429, 500]\n\
         [retry]\nmax_attempts = 3\n\
         [retry.backoff]\nkind = \"constant\"\ndelay = \"{wait_ms}ms\"\njitter = \"none\"\n\
         [retry.budget]\nenabled = false\n\
         [circuit_breaker]\nconsecutive_failures = {trip}\nfailure_rate = 0\nopen_for = \"1h\"\n\
         max_open_for = \"1h\"\nprobe_every = 0\nwait_for_probe = \"0s\"\n"
    ))
    .unwrap()
}

fn request(host: &str, call: usize) -> Request<Full<Bytes>> {
    Request::get(format!("http://{host}/v3/devices"))
        .header("x-call", call.to_string())
        .body(Full::default())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_hundred_swaps_under_load_lose_no_call_and_mix_no_plan() {
    let seen: Seen = Arc::default();
    let (layer, swap) = ReloadableLayer::new(plan(10, 2));
    let client = layer.layer(client(Arc::clone(&seen)));

    // Trip the dead host's breaker: two failed attempts in a row, and the
    // third finds it open.
    let tripped = client
        .clone()
        .oneshot(request("dead.example", 100_000))
        .await
        .unwrap_err();
    assert_eq!(tripped.kind(), ErrorKind::CircuitOpen);
    assert_eq!(tripped.attempts(), 2);
    let open = client
        .clone()
        .oneshot(request("dead.example", 100_001))
        .await
        .unwrap_err();
    assert_eq!(open.kind(), ErrorKind::CircuitOpen);

    // 1,000 calls, one a millisecond, and a swap every 10 of them.
    let mut calls = Vec::new();
    for i in 0..1000 {
        if i % 10 == 0 {
            swap.swap(plan(if (i / 10) % 2 == 0 { 20 } else { 10 }, 2));
        }
        calls.push(tokio::spawn(
            client.clone().oneshot(request("load.example", i)),
        ));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(swap.generation(), 100);
    let mut waits = HashMap::new();
    for (i, call) in calls.into_iter().enumerate() {
        let response = call.await.unwrap().expect("every call ends well");
        assert_eq!(response.status(), 200);
        let times = seen.lock().unwrap()[&i.to_string()].clone();
        assert_eq!(times.len(), 2, "call {i}");
        // One plan's wait, never something of each.
        let wait = times[1] - times[0];
        assert!(
            wait == Duration::from_millis(10) || wait == Duration::from_millis(20),
            "call {i} waited {wait:?}"
        );
        *waits.entry(wait).or_insert(0) += 1;
    }
    assert_eq!(waits.len(), 2, "both plans ran: {waits:?}");

    // The dead host's breaker stayed open through the 100 swaps: not sent.
    let before = seen.lock().unwrap().len();
    let still = client
        .clone()
        .oneshot(request("dead.example", 100_002))
        .await
        .unwrap_err();
    assert_eq!(still.kind(), ErrorKind::CircuitOpen);
    assert_eq!(seen.lock().unwrap().len(), before, "nothing was sent");

    // A policy whose breakers say otherwise brings breakers of its own.
    swap.swap(plan(10, 5));
    let sent = client
        .clone()
        .oneshot(request("dead.example", 100_003))
        .await
        .unwrap_err();
    assert_eq!(sent.kind(), ErrorKind::RetriesExhausted);
    assert_eq!(sent.attempts(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_call_in_flight_finishes_under_its_own_policy() {
    let seen: Seen = Arc::default();
    let (layer, swap) = ReloadableLayer::new(plan(1000, 2));
    let client = layer.layer(client(Arc::clone(&seen)));
    let started = Instant::now();
    let call = tokio::spawn(client.clone().oneshot(request("load.example", 1)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Swapped while the call waits its 1 s: it keeps its wait.
    swap.swap(plan(10, 2));
    call.await.unwrap().unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(1000));
    // A call that starts now takes the new policy.
    let started = Instant::now();
    client
        .clone()
        .oneshot(request("load.example", 2))
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(10));
}

/// A policy with a budget of two retries and, when `limited`, a limit of one
/// call a second; `wait_ms` tells two of them apart.
fn budgeted(wait_ms: u64, limited: bool) -> Policy {
    let limit = if limited {
        "[rate_limit]\nper_second = 1\nburst = 1\n"
    } else {
        ""
    };
    Policy::from_toml_str(&format!(
        "[classify]\nsuccess = [200]\nretryable = [429, 500]\n\
         [retry]\nmax_attempts = 3\n\
         [retry.backoff]\nkind = \"constant\"\ndelay = \"{wait_ms}ms\"\njitter = \"none\"\n\
         [retry.budget]\ncapacity = 2\nmin_reserve = 2\n\
         [circuit_breaker]\nenabled = false\n{limit}"
    ))
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_budget_spent_before_a_swap_stays_spent_after_it() {
    let seen: Seen = Arc::default();
    let (layer, swap) = ReloadableLayer::new(budgeted(10, false));
    let client = layer.layer(client(Arc::clone(&seen)));
    // Two retries spend the budget.
    let error = client
        .clone()
        .oneshot(request("dead.example", 1))
        .await
        .unwrap_err();
    assert_eq!(error.attempts(), 3);
    // Another wait, the same budget: the budget is the one already spent.
    swap.swap(budgeted(20, false));
    let error = client
        .clone()
        .oneshot(request("dead.example", 2))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BudgetExhausted, "{error:?}");
    assert_eq!(error.attempts(), 1);
    // A budget of other settings starts afresh.
    swap.swap(
        budgeted(20, false).with_retry(
            tower_rebound::retry::RetrySettings::builder()
                .max_attempts(2)
                .build()
                .unwrap(),
        ),
    );
    let error = client
        .clone()
        .oneshot(request("dead.example", 3))
        .await
        .unwrap_err();
    assert_eq!(error.attempts(), 2, "{error:?}");
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_keeps_its_turns_across_a_swap() {
    let seen: Seen = Arc::default();
    let (layer, swap) = ReloadableLayer::new(budgeted(10, true));
    let client = layer.layer(client(Arc::clone(&seen)));
    let started = Instant::now();
    // The first attempt takes the one turn; its retry waits for the next.
    client
        .clone()
        .oneshot(request("load.example", 1))
        .await
        .unwrap();
    let first = started.elapsed();
    assert!(first >= Duration::from_secs(1), "{first:?}");
    swap.swap(budgeted(20, true));
    // The same limit: the next turn comes a second after the last.
    client
        .clone()
        .oneshot(request("load.example", 2))
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let (last_of_first, first_of_second) = (seen["1"][1], seen["2"][0]);
    assert!(
        first_of_second - last_of_first >= Duration::from_secs(1),
        "{:?}",
        first_of_second - last_of_first
    );
}

#[cfg(feature = "watch")]
#[tokio::test(start_paused = true)]
async fn a_watched_file_is_put_in_force_when_it_changes_and_a_broken_one_is_not() {
    let dir = std::env::temp_dir().join(format!("rebound-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(&path, "[retry]\nmax_attempts = 2\n").unwrap();
    let (_layer, swap) = ReloadableLayer::new(Policy::from_path(&path).unwrap());
    let errors = Arc::new(Mutex::new(Vec::new()));
    let watcher = swap.watch_file(&path, Duration::from_millis(100), {
        let errors = Arc::clone(&errors);
        move |loaded| match loaded {
            Ok(policy) => Some(policy),
            Err(error) => {
                errors.lock().unwrap().push(error.to_string());
                None
            }
        }
    });
    // Unchanged: nothing is swapped, however long.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(swap.generation(), 0);
    std::fs::write(&path, "[retry]\nmax_attempts = 3\n").unwrap();
    for _ in 0..100 {
        if swap.generation() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(swap.generation(), 1);
    // A broken edit is handed over as an error, and nothing is swapped.
    std::fs::write(&path, "[retry]\nmax_attempts = \"many\"\n").unwrap();
    for _ in 0..100 {
        if !errors.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let said = errors.lock().unwrap().clone();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("policy.toml:2:"), "{said:?}");
    assert_eq!(swap.generation(), 1);
    watcher.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
