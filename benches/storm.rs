//! Retry storms: does rebound amplify an outage? One command:
//!
//! ```text
//! cargo bench --bench storm
//! ```
//!
//! Open-loop clients call a simulated server (a capacity, a queue, faults on
//! a schedule; `testkit/src/sim.rs`) through rebound's real
//! `ResilienceLayer`, on paused Tokio time, so minutes of traffic take
//! seconds. Each scenario runs under the `connio` preset, the preset without
//! its breaker, plain retries (the same 4 attempts and backoff, no budget, no
//! breaker) and no retries, and the table shows, for each:
//!
//! - amplification: requests the server received per logical call over the
//!   whole run, each counted against the call that sent it (retries and
//!   status requests included); the outage scenario also splits it between
//!   the calls made during the outage and after it;
//! - the share of calls that succeeded;
//! - calls the breaker rejected without sending;
//! - for the outage and the stall, when goodput came back after the fault;
//! - for the 202 writes, how long after each operation finished its caller
//!   had the result.

#[path = "../tests/support/storm.rs"]
mod storm;

use std::time::Duration;

use storm::{Config, Run, drive, drive_method};
use tower_rebound_testkit::sim::{Fault, SimConfig};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn header() {
    println!(
        "{:<38} {:>6} {:<27} {:>8} {:>9} {:>9} {:>12} {:>9}",
        "scenario", "rate/s", "client", "calls", "amplif.", "success", "circuit_open", "recovery"
    );
    println!("{}", "-".repeat(127));
}

fn row(scenario: &str, rate: f64, config: Config, run: &Run, recovery: Option<String>) {
    named_row(scenario, rate, config.name(), run, recovery);
}

fn named_row(scenario: &str, rate: f64, client: &str, run: &Run, recovery: Option<String>) {
    line(
        scenario,
        rate,
        client,
        run.calls,
        run.amplification(),
        run.success_share(),
        run.count("circuit_open"),
        recovery.unwrap_or_else(|| "-".into()),
    );
}

#[allow(clippy::too_many_arguments)]
fn line(
    scenario: &str,
    rate: f64,
    client: &str,
    calls: u64,
    amplification: f64,
    success: f64,
    circuit_open: u64,
    recovery: String,
) {
    println!(
        "{:<38} {:>6} {:<27} {:>8} {:>8.3}x {:>8.2}% {:>12} {:>9}",
        scenario,
        rate,
        client,
        calls,
        amplification,
        success * 100.0,
        circuit_open,
        recovery,
    );
}

fn main() {
    // `cargo bench` passes --bench; nothing here is criterion.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        header();
        for rate in [10.0, 100.0, 1000.0] {
            let config = SimConfig {
                capacity: None,
                faults: vec![Fault::Outage {
                    from: Duration::ZERO,
                    until: secs(60),
                }],
                seed: 1,
                operations: None,
            };
            for client in Config::ALL {
                // 60 s of outage, then 30 s of health; recovery is counted
                // from the end of the outage.
                let run = drive(client.policy("10s"), config.clone(), rate, secs(90), 3).await;
                let recovery = run
                    .recovered_at(60, rate, 0.95)
                    .map_or("> 30s".to_owned(), |s| format!("{}s", s - 60));
                row(
                    "1. full outage 0-60 s, then 30 s up",
                    rate,
                    client,
                    &run,
                    Some(recovery),
                );
                // Call i starts at i / rate seconds.
                let outage_calls = (rate * 60.0) as u64;
                println!(
                    "{:>36}   amplification of the calls made during the outage: {:.3}x, after it: {:.3}x",
                    "",
                    run.amplification_of(0..outage_calls),
                    run.amplification_of(outage_calls..run.calls),
                );
            }
        }
        for (rate, duration) in [(10.0, 600), (100.0, 60), (1000.0, 60)] {
            let config = SimConfig {
                capacity: None,
                faults: vec![Fault::Random { p: 0.1 }],
                seed: 7,
                operations: None,
            };
            for client in Config::ALL {
                let run = drive(
                    client.policy("10s"),
                    config.clone(),
                    rate,
                    secs(duration),
                    5,
                )
                .await;
                row("2. 10% random failures", rate, client, &run, None);
            }
        }
        {
            let config = SimConfig {
                capacity: None,
                faults: vec![Fault::Throttle {
                    per_second: 100,
                    retry_after_secs: 1,
                }],
                seed: 1,
                operations: None,
            };
            for client in Config::ALL {
                let run = drive(client.policy("10s"), config.clone(), 150.0, secs(60), 9).await;
                row("3. throttled above 100/s (429)", 150.0, client, &run, None);
                println!(
                    "{:>36}   429s sent: {}, retries sooner than their Retry-After: {}",
                    "", run.server.throttled, run.server.early_retries
                );
            }
        }
        // Capacity 300/s, offered 280/s; the server stalls from 10 s to 20 s.
        // With attempts that time out after 1 s, callers give up long before
        // the server answers, which is what makes a stall metastable; with
        // the preset's 10 s, they wait the stall out.
        for (scenario, attempt_timeout) in [
            ("4. stall 10-20 s, attempt timeout 1 s", "1s"),
            ("4. stall 10-20 s, attempt timeout 10 s", "10s"),
        ] {
            let config = SimConfig {
                capacity: Some(300.0),
                faults: vec![Fault::Stall {
                    from: secs(10),
                    until: secs(20),
                }],
                seed: 1,
                operations: None,
            };
            for client in Config::ALL {
                let run = drive(
                    client.policy(attempt_timeout),
                    config.clone(),
                    280.0,
                    secs(90),
                    11,
                )
                .await;
                let recovery = run
                    .recovered_at(20, 280.0, 0.95)
                    .map_or("never".to_owned(), |s| format!("{}s", s - 20));
                row(scenario, 280.0, client, &run, Some(recovery));
                let arrivals: Vec<String> = run
                    .server
                    .arrivals
                    .iter()
                    .step_by(10)
                    .map(u64::to_string)
                    .collect();
                println!(
                    "{:>36}   server arrivals/s every 10 s: {}",
                    "",
                    arrivals.join(" ")
                );
            }
        }
        {
            // Writes at 100/s answered 202; each operation takes 5 s; the
            // server completes 1000 requests/s.
            let config = SimConfig {
                capacity: Some(1000.0),
                faults: vec![],
                seed: 1,
                operations: Some(secs(5)),
            };
            let connio = include_str!("../policies/connio.toml");
            let tight = connio
                .replace("interval = \"1s\"", "interval = \"100ms\"")
                .replace("multiplier = 1.5", "multiplier = 1")
                .replace("max_polls = 30", "max_polls = 100");
            let blind = connio.replace(
                "location_headers = [\"Operation-Location\", \"Location\"]",
                "location_headers = []",
            );
            for (name, text) in [
                ("rebound connio (1 s, x1.5)", connio.to_owned()),
                ("polling every 100 ms", tight),
                ("no polling (accepted)", blind),
            ] {
                let policy = tower_rebound::Policy::from_toml_str(&text).expect("a valid policy");
                let run = drive_method(
                    policy,
                    config.clone(),
                    100.0,
                    secs(60),
                    13,
                    http::Method::POST,
                )
                .await;
                named_row("5. 202 writes, 5 s operations", 100.0, name, &run, None);
                // Lateness: when the caller had the final result, minus when
                // the server's operation finished.
                let lateness = match run.lateness_summary() {
                    Some(l) => format!(
                        "result after the operation finished: mean {} ms, p99 {} ms, max {} ms",
                        l.mean.as_millis(),
                        l.p99.as_millis(),
                        l.max.as_millis()
                    ),
                    None => "the callers never had a result".to_owned(),
                };
                println!(
                    "{:>36}   accepted: {}, {lateness}",
                    "",
                    run.count("accepted"),
                );
            }
        }
    });
}
