//! Every request a call sends is counted: the call's counts, its events and
//! its span agree with what the server received, retries of the write and
//! retries of status requests included, whichever way the call ends, in the
//! assembled stack and in a stack of the standalone layers made by hand.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::hyper_client;
use http::Request;
use http_body_util::Full;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_rebound::events::{AttemptStarted, CallEnded, Listener, PollSent};
use tower_rebound::{CallInfo, Error, ErrorKind, Policy, ResilienceLayer};
use tower_rebound_testkit::{TestServer, api_error, respond};

/// A server that answers each request with the next status of its script,
/// in the order requests arrive, whatever their path: a 202 names `/ops/1`.
async fn scripted(statuses: &[u16]) -> TestServer {
    let script = Arc::new(Mutex::new(
        statuses.iter().copied().collect::<VecDeque<_>>(),
    ));
    TestServer::start(move |_request| {
        let next = script.lock().unwrap().pop_front().unwrap_or(599);
        async move {
            match next {
                202 => {
                    let mut response = respond(202, "");
                    response
                        .headers_mut()
                        .insert("location", "/ops/1".parse().unwrap());
                    response
                }
                500 => api_error(500, &[("InternalError", "try again")]),
                status => respond(status, "{}"),
            }
        }
    })
    .await
}

/// Counts what the events say was sent.
#[derive(Default, Clone)]
struct Counter {
    attempts_started: Arc<AtomicU32>,
    polls_sent: Arc<AtomicU32>,
    ended: Arc<Mutex<Option<(u32, u32, u32)>>>,
}

impl Listener for Counter {
    fn attempt_started(&self, _: &AttemptStarted<'_>) {
        self.attempts_started.fetch_add(1, Ordering::SeqCst);
    }
    fn poll_sent(&self, _: &PollSent<'_>) {
        self.polls_sent.fetch_add(1, Ordering::SeqCst);
    }
    fn call_ended(&self, e: &CallEnded<'_>) {
        *self.ended.lock().unwrap() = Some((e.attempts(), e.polls(), e.requests()));
    }
}

fn policy(counter: &Counter, max_polls: u32) -> Policy {
    Policy::from_toml_str(&format!(
        "[classify]\nsuccess = [200]\npollable = [202]\nretryable = [500]\nterminal = [404]\n\
         [retry]\nmax_attempts = 3\n\
         [retry.backoff]\ninitial = \"1ms\"\nmax = \"2ms\"\n\
         [poll]\ninterval = \"1ms\"\nmax_interval = \"2ms\"\nmax_polls = {max_polls}\n"
    ))
    .unwrap()
    .with_listener(counter.clone())
}

/// A write that may be retried: it carries an `Idempotency-Key`.
fn write(server: &TestServer) -> Request<Full<Bytes>> {
    Request::post(server.url("/write"))
        .header("idempotency-key", "w-1")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

/// The counts a call reports: from its response, or from its error.
fn counts(result: &Result<http::Response<hyper::body::Incoming>, Error>) -> (u32, u32, u32) {
    match result {
        Ok(response) => {
            let info = CallInfo::of(response);
            (info.attempts(), info.polls(), info.requests())
        }
        Err(error) => (error.attempts(), error.polls(), error.requests()),
    }
}

#[derive(Clone, Copy, Debug)]
enum Stack {
    Assembled,
    ByHand,
}

async fn call(
    stack: Stack,
    policy: &Policy,
    server: &TestServer,
) -> Result<http::Response<hyper::body::Incoming>, Error> {
    match stack {
        Stack::Assembled => {
            ResilienceLayer::new(policy.clone())
                .layer(hyper_client())
                .oneshot(write(server))
                .await
        }
        Stack::ByHand => {
            ServiceBuilder::new()
                .layer(policy.trace_layer())
                .layer(policy.polling_layer())
                .layer(policy.retry_layer())
                .layer(policy.classify_layer())
                .service(hyper_client())
                .oneshot(write(server))
                .await
        }
    }
}

/// Runs `statuses` through both stacks and checks that every count agrees
/// with the server's.
async fn agree(
    statuses: &[u16],
    max_polls: u32,
    outcome: Option<ErrorKind>,
    expected: (u32, u32, u32),
) {
    for stack in [Stack::Assembled, Stack::ByHand] {
        let server = scripted(statuses).await;
        let counter = Counter::default();
        #[cfg(feature = "metrics")]
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        #[cfg(feature = "metrics")]
        let snapshotter = recorder.snapshotter();
        #[cfg(feature = "metrics")]
        let _local = metrics::set_default_local_recorder(&recorder);
        #[cfg(feature = "metrics")]
        let policy = policy(&counter, max_polls)
            .with_listener(tower_rebound::events::MetricsListener::new());
        #[cfg(not(feature = "metrics"))]
        let policy = policy(&counter, max_polls);
        let result = call(stack, &policy, &server).await;
        assert_eq!(
            result.as_ref().err().map(Error::kind),
            outcome,
            "{stack:?}: {result:?}"
        );
        let seen = server.requests() as u32;
        assert_eq!(seen, statuses.len() as u32, "{stack:?}: the whole script");
        assert_eq!(counts(&result), expected, "{stack:?}");
        assert_eq!(counts(&result).2, seen, "{stack:?}: requests");
        assert_eq!(
            counter.attempts_started.load(Ordering::SeqCst),
            seen,
            "{stack:?}: attempt_started events"
        );
        assert_eq!(
            *counter.ended.lock().unwrap(),
            Some(expected),
            "{stack:?}: call_ended"
        );
        assert_eq!(
            counter.polls_sent.load(Ordering::SeqCst),
            expected.1,
            "{stack:?}: poll_sent events"
        );
        // The metrics record one request duration per request sent.
        #[cfg(feature = "metrics")]
        {
            use metrics_util::debugging::DebugValue;
            use tower_rebound::events::instrument::REQUEST_DURATION;
            let recorded: usize = snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .filter(|(key, ..)| key.key().name() == REQUEST_DURATION)
                .map(|(.., value)| match value {
                    DebugValue::Histogram(values) => values.len(),
                    _ => 0,
                })
                .sum();
            assert_eq!(recorded as u32, seen, "{stack:?}: {REQUEST_DURATION}");
        }
    }
}

#[tokio::test]
async fn a_write_retried_before_its_202_and_a_status_request_retried_are_all_counted() {
    // POST: 500, 500, 202; status URL: 500 then 202 (poll 1), 200 (poll 2).
    agree(&[500, 500, 202, 500, 202, 200], 10, None, (3, 2, 6)).await;
}

#[tokio::test]
async fn a_status_request_that_runs_out_of_attempts_counts_each_one() {
    // POST: 202; status URL: 500, 500, 500 (poll 1 runs out of attempts).
    agree(
        &[202, 500, 500, 500],
        10,
        Some(ErrorKind::RetriesExhausted),
        (1, 1, 4),
    )
    .await;
}

#[tokio::test]
async fn an_operation_that_outlasts_its_polls_counts_the_write_s_retries() {
    // POST: 500, 202; status URL: 202, 500 then 202 (poll 2); max_polls 2.
    agree(
        &[500, 202, 202, 500, 202],
        2,
        Some(ErrorKind::PollTimeout),
        (2, 2, 5),
    )
    .await;
}
