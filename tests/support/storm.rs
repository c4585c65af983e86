//! The storm simulation's driver: open-loop clients calling the simulated
//! server through rebound's real `ResilienceLayer`, on paused Tokio time.
//! Shared by `benches/storm.rs` (the full table) and `tests/storm.rs` (the
//! scaled-down checks).

#![allow(dead_code)] // each user takes its part

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_rebound::{Policy, ResilienceLayer};
use tower_rebound_testkit::sim::{SimConfig, SimServer, SimStats};

/// The client configurations compared. The `standard` preset is not among
/// them: its retry, budget, breaker and poll settings are `connio`'s, and
/// the two differ only in statuses the simulated server never sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    /// The `connio` preset: budget and breaker on.
    Connio,
    /// The `connio` preset with its breaker off: the retry budget alone.
    BudgetOnly,
    /// The same attempts and backoff as `connio`, with no budget and no breaker.
    PlainRetries,
    /// One attempt, no breaker.
    NoRetries,
    /// The `connio` preset with its breaker off and adaptive throttling on
    /// (k = 2 over 2 minutes): the budget and local rejection.
    Throttle,
    /// The `connio` preset with its breaker off and the retry budget of
    /// earlier versions: 20 tokens at any call rate, no refunds.
    FixedBudget,
    /// The `connio` preset with its breaker off and its budget's refunds
    /// off: what refunds do for a small reserve.
    NoRefund,
}

impl Config {
    pub const ALL: [Config; 5] = [
        Config::Connio,
        Config::BudgetOnly,
        Config::Throttle,
        Config::PlainRetries,
        Config::NoRetries,
    ];

    /// The configurations of the fleet scenarios: the retry budget that
    /// scales with the call rate beside the fixed one.
    pub const FLEET: [Config; 5] = [
        Config::Connio,
        Config::BudgetOnly,
        Config::FixedBudget,
        Config::PlainRetries,
        Config::NoRetries,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Config::Connio => "rebound connio",
            Config::BudgetOnly => "rebound connio, no breaker",
            Config::PlainRetries => "plain retries (4 attempts)",
            Config::NoRetries => "no retries",
            Config::Throttle => "rebound connio, throttle, no breaker",
            Config::FixedBudget => "no breaker, fixed budget of 20",
            Config::NoRefund => "rebound connio, no breaker, no refunds",
        }
    }

    /// The policy, with `attempt_timeout` for each attempt (the preset's is
    /// `10s`).
    pub fn policy(self, attempt_timeout: &str) -> Policy {
        let connio = include_str!("../../policies/connio.toml");
        let text = match self {
            Config::Connio => connio.to_owned(),
            // The breaker's section is the last to say `enabled = true`.
            Config::BudgetOnly => match connio.rfind("enabled = true") {
                Some(at) => format!("{}enabled = false{}", &connio[..at], &connio[at + 14..]),
                None => connio.to_owned(),
            },
            // Both the budget and the breaker say `enabled = true`.
            Config::PlainRetries => connio.replace("enabled = true", "enabled = false"),
            Config::NoRetries => connio
                .replace("enabled = true", "enabled = false")
                .replace("max_attempts = 4", "max_attempts = 1"),
            Config::FixedBudget | Config::NoRefund => {
                let budget = if self == Config::FixedBudget {
                    connio.replace("min_reserve = 3", "min_reserve = 20")
                } else {
                    connio.to_owned()
                };
                let budget = budget.replace("refund = true", "refund = false");
                match budget.rfind("enabled = true") {
                    Some(at) => format!("{}enabled = false{}", &budget[..at], &budget[at + 14..]),
                    None => budget,
                }
            }
            Config::Throttle => match connio.rfind("enabled = true") {
                Some(at) => format!(
                    "{}enabled = false{}\n[adaptive_throttle]\nenabled = true\n",
                    &connio[..at],
                    &connio[at + 14..]
                ),
                None => connio.to_owned(),
            },
        };
        let text = text.replace(
            "attempt = \"10s\"",
            &format!("attempt = \"{attempt_timeout}\""),
        );
        Policy::from_toml_str(&text).expect("the storm's policies are valid")
    }
}

/// What one run saw.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub calls: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Successful calls per second, by when they finished.
    pub goodput: Vec<u64>,
    /// For each successful write that started an operation, how long after
    /// the operation finished its caller had the result.
    pub lateness: Vec<Duration>,
    /// How long each successful call took, from when it was due.
    pub latencies: Vec<Duration>,
    pub server: SimStats,
}

/// How late results arrived after the operations they report finished.
#[derive(Debug, Clone, Copy)]
pub struct Lateness {
    pub mean: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Run {
    /// The `p`th percentile (0 to 100) of the successful calls' latencies.
    pub fn latency(&self, p: f64) -> Option<Duration> {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted
            .get(index.saturating_sub(1).min(sorted.len().saturating_sub(1)))
            .copied()
    }

    /// Amplification: requests the server received per logical call, each
    /// request counted against the call that sent it (retries and status
    /// requests included), over every call of the run.
    pub fn amplification(&self) -> f64 {
        self.amplification_of(0..self.calls)
    }

    /// Amplification over the calls numbered `calls` (call `i` starts at
    /// `i / rate` seconds), counting every request they sent, whenever it
    /// was sent.
    pub fn amplification_of(&self, calls: Range<u64>) -> f64 {
        let sent: u64 = calls
            .clone()
            .filter_map(|i| self.server.by_call.get(i as usize))
            .map(|&n| u64::from(n))
            .sum();
        sent as f64 / calls.count().max(1) as f64
    }

    /// The server's load over the seconds `seconds` of the run, as a share
    /// of the load offered at `rate` calls a second: the requests that
    /// arrived then, whichever call sent them, over the calls made then.
    pub fn load_during(&self, seconds: Range<usize>, rate: f64) -> f64 {
        let arrived: u64 = seconds
            .clone()
            .filter_map(|s| self.server.arrivals.get(s))
            .sum();
        arrived as f64 / (rate * seconds.len().max(1) as f64)
    }

    /// Counts a call that ended `after` the start of the run.
    fn record(&mut self, outcome: &'static str, after: Duration) {
        *self.outcomes.entry(outcome).or_default() += 1;
        if outcome == "success" {
            let second = after.as_secs() as usize;
            if self.goodput.len() <= second {
                self.goodput.resize(second + 1, 0);
            }
            self.goodput[second] += 1;
        }
    }

    pub fn count(&self, outcome: &str) -> u64 {
        self.outcomes.get(outcome).copied().unwrap_or(0)
    }

    /// The share of calls that succeeded.
    pub fn success_share(&self) -> f64 {
        self.count("success") as f64 / self.calls.max(1) as f64
    }

    /// The first second from `from` on where goodput is back to at least
    /// `share` of `rate` and stays there for 3 seconds.
    pub fn recovered_at(&self, from: usize, rate: f64, share: f64) -> Option<usize> {
        let good = |s: usize| {
            self.goodput
                .get(s)
                .is_some_and(|g| *g as f64 >= rate * share)
        };
        let last = self.goodput.len().checked_sub(3)?;
        (from..=last).find(|&s| (s..s + 3).all(good))
    }

    /// Mean, 99th percentile and maximum of [`Run::lateness`]; `None` when no
    /// write got its result.
    pub fn lateness_summary(&self) -> Option<Lateness> {
        let mut sorted = self.lateness.clone();
        sorted.sort_unstable();
        let max = *sorted.last()?;
        let n = sorted.len();
        let mean = sorted.iter().sum::<Duration>() / n as u32;
        // The nearest-rank percentile: the smallest value with 99% at or below it.
        let p99 = sorted[(n * 99).div_ceil(100) - 1];
        Some(Lateness { mean, p99, max })
    }
}

/// `processes` processes, each its own stack (so its own retry budget and
/// breakers) built from its own `policy()`, calling one server at `rate`
/// per second each for `duration`. Process `p` makes its calls at
/// `(i + p / processes) / rate` seconds, and its call `i` is the fleet's
/// call `i * processes + p`: calls are numbered in the order they start, as
/// in [`drive`]. Waits for every call to end.
pub async fn drive_fleet(
    policy: impl Fn() -> Policy,
    config: SimConfig,
    processes: u64,
    rate: f64,
    duration: Duration,
    seed: u64,
) -> Run {
    let server = SimServer::new(config);
    let start = Instant::now();
    let per_process = (rate * duration.as_secs_f64()).round() as u64;
    let calls = per_process * processes;
    let clients: Vec<_> = (0..processes)
        .map(|p| ResilienceLayer::with_seed(policy(), seed.wrapping_add(p)).layer(server.clone()))
        .collect();
    let mut tasks = Vec::with_capacity(calls as usize);
    for id in 0..calls {
        let (i, p) = (id / processes, id % processes);
        let at = (i as f64 + p as f64 / processes as f64) / rate;
        tokio::time::sleep_until(start + Duration::from_secs_f64(at)).await;
        let client = clients[p as usize].clone();
        tasks.push(tokio::spawn(async move {
            let request = Request::get("http://sim.example/v3/devices")
                .header("x-call", id)
                .body(Full::<Bytes>::default())
                .expect("a valid request");
            let outcome = match client.oneshot(request).await {
                Ok(response) if response.status() == http::StatusCode::ACCEPTED => "accepted",
                Ok(_) => "success",
                Err(e) => e.kind().as_str(),
            };
            (outcome, Instant::now())
        }));
    }
    let mut run = Run {
        calls,
        ..Run::default()
    };
    for task in tasks {
        let (outcome, ended) = task.await.expect("a call task");
        run.record(outcome, ended - start);
    }
    run.server = server.stats();
    run
}

/// Calls at `rate` per second for `duration`, each through the stack of
/// `policy` to `server`; waits for every call to end.
pub async fn drive(
    policy: Policy,
    config: SimConfig,
    rate: f64,
    duration: Duration,
    seed: u64,
) -> Run {
    drive_method(policy, config, rate, duration, seed, http::Method::GET).await
}

/// Like [`drive`], with another method (`POST` for writes).
pub async fn drive_method(
    policy: Policy,
    config: SimConfig,
    rate: f64,
    duration: Duration,
    seed: u64,
    method: http::Method,
) -> Run {
    let server = SimServer::new(config);
    let client = ResilienceLayer::with_seed(policy, seed).layer(server.clone());
    let start = Instant::now();
    let calls = (rate * duration.as_secs_f64()).round() as u64;
    let mut tasks = Vec::with_capacity(calls as usize);
    for i in 0..calls {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        let client = client.clone();
        let method = method.clone();
        tasks.push(tokio::spawn(async move {
            let request = Request::builder()
                .method(method)
                .uri("http://sim.example/v3/devices")
                .header("x-call", i)
                .body(Full::<Bytes>::default())
                .expect("a valid request");
            let outcome = match client.oneshot(request).await {
                Ok(response) if response.status() == http::StatusCode::ACCEPTED => "accepted",
                Ok(_) => "success",
                Err(e) => e.kind().as_str(),
            };
            (outcome, Instant::now())
        }));
    }
    let mut ends = Vec::with_capacity(tasks.len());
    for task in tasks {
        ends.push(task.await.expect("a call task"));
    }
    let mut run = Run {
        calls,
        server: server.stats(),
        ..Run::default()
    };
    // The operation each write started (the last, should a write have been
    // sent more than once): its status URL is the one the call followed.
    let finishes: HashMap<u64, Instant> = run
        .server
        .operations
        .iter()
        .filter_map(|operation| Some((operation.call?, operation.finishes)))
        .collect();
    for (i, (outcome, ended)) in ends.into_iter().enumerate() {
        *run.outcomes.entry(outcome).or_default() += 1;
        if outcome == "success" {
            let second = (ended - start).as_secs() as usize;
            if run.goodput.len() <= second {
                run.goodput.resize(second + 1, 0);
            }
            run.goodput[second] += 1;
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            run.latencies.push(ended.saturating_duration_since(due));
            if let Some(finished) = finishes.get(&(i as u64)) {
                run.lateness
                    .push(ended.saturating_duration_since(*finished));
            }
        }
    }
    run
}
