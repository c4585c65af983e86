//! The success path allocates nothing beyond what the inner service does,
//! whether the answer is ready at once or only later, and loading policies
//! leaks nothing.
//!
//! A counting global allocator counts the allocations and the live bytes of
//! each thread; every call here is polled on the test's own thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Future, Ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::Full;
use tower::{Layer, Service};
use tower_rebound::{Policy, ResilienceLayer};
use tower_rebound_testkit::Answer;

struct CountingAllocator;

thread_local! {
    // Per thread: the test harness allocates on its own threads (printing
    // results) while a test measures.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

/// Bytes allocated and not yet freed by this thread.
fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

fn add_live(bytes: isize) {
    let _ = LIVE_BYTES.try_with(|n| n.set(n.get() + bytes));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn count() {
    // `try_with`: a thread being torn down has no counter any more.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        add_live(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add_live(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        add_live(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations made by `calls` calls of `service`, each polled to completion
/// at once (the test services answer immediately).
fn allocations_of<S>(service: &mut S, calls: usize, status: u16) -> usize
where
    S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    allocations_with(service, calls, status, &HeaderMap::new())
}

fn allocations_with<S>(service: &mut S, calls: usize, status: u16, headers: &HeaderMap) -> usize
where
    S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let before = allocations();
    for _ in 0..calls {
        assert!(service.poll_ready(&mut cx).is_ready());
        let mut request = Request::get(http::Uri::from_static("http://api.example/devices/1"))
            .body(Full::new(Bytes::from_static(b"")))
            .unwrap();
        if !headers.is_empty() {
            *request.headers_mut() = headers.clone();
        }
        let future = pin!(service.call(request));
        match future.poll(&mut cx) {
            Poll::Ready(Ok(response)) => assert_eq!(response.status(), status),
            other => panic!("expected an immediate response, got {:?}", other.is_ready()),
        }
    }
    allocations() - before
}

#[test]
fn the_success_path_allocates_no_more_than_the_inner_service() {
    for (preset, status) in [("connio", 200), ("connio", 202), ("standard", 204)] {
        let policy = Policy::preset(preset).unwrap();
        let mut bare = Answer::new(status, "{\"id\":\"1\"}");
        let mut stacked = ResilienceLayer::new(policy).layer(Answer::new(status, "{\"id\":\"1\"}"));
        // Warm up: tracing registers its callsites on first use.
        allocations_of(&mut bare, 1, status);
        allocations_of(&mut stacked, 1, status);

        let bare_allocations = allocations_of(&mut bare, 1000, status);
        let stacked_allocations = allocations_of(&mut stacked, 1000, status);
        assert_eq!(
            stacked_allocations, bare_allocations,
            "{preset} {status}: the stack allocated {stacked_allocations} times in 1000 calls, \
             the bare service {bare_allocations}"
        );
    }
}

/// A client whose answer is not ready at the first poll, as a real client's
/// never is: it wakes its task and answers at the second.
#[derive(Clone)]
struct Later(Answer);

struct NotYet {
    answer: Ready<Result<Response<Full<Bytes>>, Infallible>>,
    polled: bool,
}

impl Future for NotYet {
    type Output = Result<Response<Full<Bytes>>, Infallible>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.polled {
            self.polled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        std::pin::Pin::new(&mut self.answer).poll(cx)
    }
}

impl Service<Request<Full<Bytes>>> for Later {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = NotYet;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request<Full<Bytes>>>::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> NotYet {
        NotYet {
            answer: self.0.call(request),
            polled: false,
        }
    }
}

/// Allocations made by `calls` calls of `service`, each pending at its first
/// poll and answered at its second.
fn allocations_pending<S>(service: &mut S, calls: usize, status: u16) -> usize
where
    S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let before = allocations();
    for _ in 0..calls {
        assert!(service.poll_ready(&mut cx).is_ready());
        let request = Request::get(http::Uri::from_static("http://api.example/devices/1"))
            .body(Full::new(Bytes::from_static(b"")))
            .unwrap();
        let mut future = pin!(service.call(request));
        assert!(
            future.as_mut().poll(&mut cx).is_pending(),
            "not ready at once"
        );
        match future.poll(&mut cx) {
            Poll::Ready(Ok(response)) => assert_eq!(response.status(), status),
            other => panic!(
                "expected a response at the second poll, got {:?}",
                other.is_ready()
            ),
        }
    }
    allocations() - before
}

#[test]
fn the_pending_path_allocates_no_more_than_the_inner_service() {
    // A pending answer arms the attempt timer: a runtime's clock (paused; no
    // timer ever fires here) must be there.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _entered = runtime.enter();
    for (preset, status) in [("connio", 200), ("connio", 202), ("standard", 204)] {
        let policy = Policy::preset(preset).unwrap();
        let answer = Answer::new(status, "{\"id\":\"1\"}");
        let mut bare = Later(answer.clone());
        let mut stacked = ResilienceLayer::new(policy).layer(Later(answer));
        allocations_pending(&mut bare, 1, status);
        allocations_pending(&mut stacked, 1, status);

        let bare_allocations = allocations_pending(&mut bare, 1000, status);
        let stacked_allocations = allocations_pending(&mut stacked, 1000, status);
        assert_eq!(
            stacked_allocations, bare_allocations,
            "{preset} {status}: the stack allocated {stacked_allocations} times in 1000 pending \
             calls, the bare service {bare_allocations}"
        );
    }
}

#[test]
fn with_headers_the_only_allocation_is_one_copy_of_the_head() {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("Bearer t"));
    headers.insert("x-tenant", HeaderValue::from_static("acme"));
    // What one copy of these headers costs, counted over many copies.
    let mut copies = Vec::with_capacity(100);
    let before = allocations();
    for _ in 0..100 {
        copies.push(std::hint::black_box(headers.clone()));
    }
    let per_copy = (allocations() - before) / 100;
    drop(copies);
    assert!(per_copy > 0);

    let policy = Policy::preset("connio").unwrap();
    let mut bare = Answer::new(200, "{}");
    let mut stacked = ResilienceLayer::new(policy).layer(Answer::new(200, "{}"));
    allocations_with(&mut bare, 1, 200, &headers);
    allocations_with(&mut stacked, 1, 200, &headers);
    let bare_allocations = allocations_with(&mut bare, 100, 200, &headers);
    let stacked_allocations = allocations_with(&mut stacked, 100, 200, &headers);
    // One copy of the head, kept by the retry layer for a replay and handed
    // to the poll layer for status requests: nothing else.
    assert_eq!(stacked_allocations - bare_allocations, 100 * per_copy);
}

#[test]
fn loading_and_dropping_policies_leaves_memory_flat() {
    // Each policy differs in its status table, error-body cap and poll
    // interval, as per-tenant policies or reloads would: nothing of any of
    // them may outlive it.
    fn load(i: usize) {
        let text = format!(
            "[classify]\nretryable = [{}]\n[error_body]\nmax_bytes = {}\n\
             [poll]\ninterval = \"{}ms\"\n",
            500 + i % 99,
            1024 + i,
            // Under the base's 10 s max_interval.
            1 + i % 9_000
        );
        let policy = Policy::from_toml_str(&text).unwrap();
        let layer = ResilienceLayer::new(policy);
        let mut client = layer.layer(Answer::new(200, "{}"));
        allocations_of(&mut client, 1, 200);
    }
    // Warm up: tracing registers its callsites on first use.
    load(0);
    let before = live_bytes();
    for i in 1..=10_000 {
        load(i);
    }
    let grown = live_bytes() - before;
    // A status table alone is about 500 bytes: 10,000 kept policies would
    // hold megabytes.
    assert!(
        grown < 16 * 1024,
        "10,000 policies loaded and dropped left {grown} bytes behind"
    );
}
