//! A simulated HTTP server for storm simulations on paused Tokio time: a
//! capacity, a queue, and faults on a schedule. It is a Tower service (no
//! sockets), so thousands of simulated clients run in a second of real time.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;

/// What goes wrong, and when (offsets from the start of the run).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Every request in the window fails at once with 500.
    Outage { from: Duration, until: Duration },
    /// The server stops working in the window: requests wait (queued) until
    /// it ends, then are worked through in order.
    Stall { from: Duration, until: Duration },
    /// Each request fails at once with 500 with probability `p`.
    Random { p: f64 },
    /// Above `per_second` requests in a second, answer 429 with
    /// `Retry-After: retry_after_secs`.
    Throttle {
        per_second: u32,
        retry_after_secs: u64,
    },
}

/// The server's settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Requests the server completes per second; `None`: no limit, answers at once.
    pub capacity: Option<f64>,
    /// The faults, all applied.
    pub faults: Vec<Fault>,
    /// The seed of the random failures.
    pub seed: u64,
    /// When set, the server is `workers` that each take `service_time` per
    /// request, first come first served (in place of `capacity`): the
    /// requests beyond them queue there, so the more it holds, the longer
    /// each waits.
    pub workers: Option<(u32, Duration)>,
    /// When set, a `POST` is a write that answers 202 with
    /// `Location: /ops/N`, and `GET /ops/N` answers 202 until the operation
    /// is this old, then 200. A write answered with a fault starts nothing.
    pub operations: Option<Duration>,
}

/// What the server saw.
#[derive(Debug, Default, Clone)]
pub struct SimStats {
    /// Requests received.
    pub requests: u64,
    /// Requests received per second of the run.
    pub arrivals: Vec<u64>,
    /// The most requests the server held at once (with `workers`).
    pub peak_held: u64,
    /// 429s sent, and retries that came back before the `Retry-After` they
    /// were given (keyed by the `x-call` header the driver sets).
    pub throttled: u64,
    /// Retries that came back early.
    pub early_retries: u64,
    /// Requests received for each call, indexed by the number in the
    /// `x-call` header the driver sets (status requests carry it too).
    pub by_call: Vec<u32>,
    /// The write operations started, in order (`/ops/N` is the Nth).
    pub operations: Vec<Operation>,
}

/// A write operation the server started.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The `x-call` of the write that started it.
    pub call: Option<u64>,
    /// When it finishes: from then on its status URL answers 200.
    pub finishes: Instant,
}

struct State {
    config: SimConfig,
    start: Instant,
    next_free: Instant,
    /// When each worker is next free, with `workers`.
    workers_free: Vec<Instant>,
    /// When each request the server holds is done, with `workers`.
    held: Vec<Instant>,
    rng: u64,
    window_second: u64,
    window_count: u32,
    /// For each call id, when a 429 allows it back.
    allowed_back: std::collections::HashMap<u64, Instant>,
    stats: SimStats,
}

/// The simulated server; clones share it.
#[derive(Clone)]
pub struct SimServer {
    state: Arc<Mutex<State>>,
}

impl SimServer {
    /// A server starting now (on Tokio's clock).
    pub fn new(config: SimConfig) -> Self {
        let now = Instant::now();
        SimServer {
            state: Arc::new(Mutex::new(State {
                rng: config.seed ^ 0x9E37_79B9_7F4A_7C15,
                workers_free: config
                    .workers
                    .map_or_else(Vec::new, |(n, _)| vec![now; n as usize]),
                held: Vec::new(),
                config,
                start: now,
                next_free: now,
                window_second: 0,
                window_count: 0,
                allowed_back: Default::default(),
                stats: SimStats::default(),
            })),
        }
    }

    /// What the server saw so far.
    pub fn stats(&self) -> SimStats {
        self.state.lock().unwrap().stats.clone()
    }
}

fn next_random(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

fn respond(status: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
}

enum Plan {
    Now(Response<Full<Bytes>>),
    At(Instant, Response<Full<Bytes>>),
}

impl<B> tower_service::Service<Request<B>> for SimServer {
    type Response = Response<Full<Bytes>>;
    type Error = io::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let now = Instant::now();
        let call_id = request
            .headers()
            .get("x-call")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let plan = {
            let mut guard = self.state.lock().unwrap();
            let s = &mut *guard;
            let offset = now - s.start;
            let second = offset.as_secs() as usize;
            s.stats.requests += 1;
            if s.stats.arrivals.len() <= second {
                s.stats.arrivals.resize(second + 1, 0);
            }
            s.stats.arrivals[second] += 1;
            if let Some(id) = call_id {
                let index = id as usize;
                if s.stats.by_call.len() <= index {
                    s.stats.by_call.resize(index + 1, 0);
                }
                s.stats.by_call[index] += 1;
                if let Some(back) = s.allowed_back.remove(&id) {
                    if now < back {
                        s.stats.early_retries += 1;
                    }
                }
            }
            let mut plan = None;
            let mut stall_until = None;
            for fault in s.config.faults.clone() {
                match fault {
                    Fault::Outage { from, until } if offset >= from && offset < until => {
                        plan = Some(Plan::Now(respond(500)));
                    }
                    Fault::Stall { from, until } if offset < until => {
                        stall_until = Some((from, until));
                    }
                    Fault::Random { p } => {
                        // Drawn for every request, so the sequence does not
                        // depend on other faults.
                        let draw = next_random(&mut s.rng);
                        if draw < p && plan.is_none() {
                            plan = Some(Plan::Now(respond(500)));
                        }
                    }
                    Fault::Throttle {
                        per_second,
                        retry_after_secs,
                    } if plan.is_none() => {
                        if s.window_second != offset.as_secs() {
                            s.window_second = offset.as_secs();
                            s.window_count = 0;
                        }
                        s.window_count += 1;
                        if s.window_count > per_second {
                            s.stats.throttled += 1;
                            if let Some(id) = call_id {
                                s.allowed_back
                                    .insert(id, now + Duration::from_secs(retry_after_secs));
                            }
                            let mut response = respond(429);
                            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
                            {
                                response.headers_mut().insert("retry-after", value);
                            }
                            plan = Some(Plan::Now(response));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(plan) = plan {
                plan
            } else {
                // Writes and their status URLs, when the server has operations
                // (so a write the faults answered starts nothing).
                let answer = match s.config.operations {
                    Some(takes) if request.method() == http::Method::POST => {
                        s.stats.operations.push(Operation {
                            call: call_id,
                            finishes: now + takes,
                        });
                        let mut response = respond(202);
                        let location = format!("/ops/{}", s.stats.operations.len() - 1);
                        if let Ok(value) = HeaderValue::from_str(&location) {
                            response.headers_mut().insert("location", value);
                        }
                        response
                    }
                    Some(_) => {
                        let finishes = request
                            .uri()
                            .path()
                            .strip_prefix("/ops/")
                            .and_then(|n| n.parse::<usize>().ok())
                            .and_then(|n| s.stats.operations.get(n))
                            .map(|operation| operation.finishes);
                        match finishes {
                            Some(finishes) if now < finishes => respond(202),
                            _ => respond(200),
                        }
                    }
                    None => respond(200),
                };
                if let Some((_, service_time)) = s.config.workers {
                    // The worker free first takes it, once free.
                    let (index, free) = s
                        .workers_free
                        .iter()
                        .copied()
                        .enumerate()
                        .min_by_key(|&(_, free)| free)
                        .expect("at least one worker");
                    let done = free.max(now) + service_time;
                    s.workers_free[index] = done;
                    s.held.retain(|&d| d > now);
                    s.held.push(done);
                    s.stats.peak_held = s.stats.peak_held.max(s.held.len() as u64);
                    return Box::pin(async move {
                        tokio::time::sleep_until(done).await;
                        Ok(answer)
                    });
                }
                match s.config.capacity {
                    None => Plan::Now(answer),
                    Some(capacity) => {
                        // One queue worked through in order at `capacity`
                        // per second; a stall holds it until the stall ends.
                        let mut begin = s.next_free.max(now);
                        if let Some((from, until)) = stall_until {
                            let (from, until) = (s.start + from, s.start + until);
                            if begin >= from && begin < until {
                                begin = until;
                            }
                        }
                        let done = begin + Duration::from_secs_f64(1.0 / capacity);
                        s.next_free = done;
                        Plan::At(done, answer)
                    }
                }
            }
        };
        Box::pin(async move {
            match plan {
                Plan::Now(response) => Ok(response),
                Plan::At(done, answer) => {
                    tokio::time::sleep_until(done).await;
                    Ok(answer)
                }
            }
        })
    }
}
