//! Operations whose progress is in the body of a `200`, on paused time: the
//! waits a running status answer asks for, and a status body that never
//! ends, through the assembled stack and the standalone layers.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_rebound::{CallInfo, Error, ErrorKind, Policy, ResilienceLayer};
use tower_rebound_testkit::{Scripted, Step};

fn policy() -> Policy {
    Policy::from_toml_str(
        "[classify]\nsuccess = [200]\npollable = [202]\n\
         [timeouts]\ntotal = \"60s\"\nattempt = \"10s\"\n\
         [poll]\nlocation_headers = [\"azure-asyncoperation\"]\ninterval = \"1s\"\nmultiplier = 2\nmax_interval = \"5s\"\n\
         status_pointer = \"/status\"\nrunning = [\"InProgress\"]\nsucceeded = [\"Succeeded\"]\n",
    )
    .unwrap()
}

fn write() -> Request<Full<Bytes>> {
    Request::post("https://mgmt.example/vms/1/start")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

fn status(body: &'static str, retry_after: Option<&str>) -> Step {
    Step::Respond {
        status: 200,
        headers: retry_after
            .map(|secs| vec![("retry-after", secs.to_owned())])
            .unwrap_or_default(),
        body: Bytes::from_static(body.as_bytes()),
    }
}

#[derive(Clone, Copy, Debug)]
enum Stack {
    Assembled,
    ByHand,
}

async fn call<S, RB>(stack: Stack, client: S) -> Result<Response<RB>, Error>
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<tower_rebound::BoxError>,
    S::Future: Send,
    RB: Body + Unpin + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<tower_rebound::BoxError>,
{
    let policy = policy();
    match stack {
        Stack::Assembled => {
            ResilienceLayer::new(policy)
                .layer(client)
                .oneshot(write())
                .await
        }
        Stack::ByHand => {
            ServiceBuilder::new()
                .layer(policy.polling_layer())
                .layer(policy.retry_layer())
                .layer(policy.classify_layer())
                .service(client)
                .oneshot(write())
                .await
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_running_status_answer_s_retry_after_sets_the_next_wait() {
    for stack in [Stack::Assembled, Stack::ByHand] {
        let script = Scripted::new([
            Step::with_header(202, "azure-asyncoperation", "/ops/1"),
            status(r#"{"status":"InProgress"}"#, Some("3")),
            status(r#"{"status":"InProgress"}"#, None),
            status(r#"{"status":"Succeeded"}"#, None),
        ]);
        let response = call(stack, script.clone()).await.unwrap();
        assert_eq!(CallInfo::of(&response).polls(), 3, "{stack:?}");
        let seen = script.seen();
        let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at - w[0].at).collect();
        // The 202's interval (1 s), the running answer's Retry-After (3 s),
        // then the interval grown for poll 3 (4 s).
        assert_eq!(gaps, [1, 3, 4].map(Duration::from_secs), "{stack:?}");
    }
}

/// A body that sends its first bytes, then never ends.
#[derive(Debug)]
struct Stalled(Option<Bytes>);

impl Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            None => Poll::Pending,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_status_body_that_never_ends_ends_the_call_at_its_deadline() {
    for stack in [Stack::Assembled, Stack::ByHand] {
        let client = tower::service_fn(|request: Request<Full<Bytes>>| async move {
            let response = if request.method() == http::Method::POST {
                let mut response = Response::new(Stalled(None));
                *response.status_mut() = http::StatusCode::ACCEPTED;
                response
                    .headers_mut()
                    .insert("azure-asyncoperation", "/ops/1".parse().unwrap());
                response
            } else {
                Response::new(Stalled(Some(Bytes::from_static(b"{\"status\":"))))
            };
            Ok::<_, std::convert::Infallible>(response)
        });
        let started = Instant::now();
        let error = call(stack, client).await.unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::DeadlineExceeded,
            "{stack:?}: {error}"
        );
        assert_eq!(error.polls(), 1, "{stack:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(60), "{stack:?}");
        assert!(
            error.to_string().contains("status body"),
            "{stack:?}: {error}"
        );
    }
}
