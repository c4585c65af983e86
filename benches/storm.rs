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
//! breaker) and no retries; scenarios 6 to 9 run fleets of 1, 10 and 100
//! processes, each its own stack, against one server, and add the retry
//! budget of earlier versions (20 tokens at any rate, no refunds) beside the
//! preset's, which scales with each process's call rate. The table shows,
//! for each:
//!
//! - amplification: requests the server received per logical call over the
//!   whole run, each counted against the call that sent it (retries and
//!   status requests included); the outage scenario also splits it between
//!   the calls made during the outage and after it;
//! - the share of calls that succeeded;
//! - calls the breaker rejected without sending;
//! - for the outage and the stall, when goodput came back after the fault;
//! - for the 202 writes, how long after each operation finished its caller
//!   had the result;
//! - for the slow server (scenario 11), goodput, the latency of the calls
//!   that succeeded and the most requests the server held, with and without
//!   an adaptive concurrency limit.
//!
//! and for each scenario an SVG chart, `docs/storm/N-*.svg`, draws the
//! requests arriving at the server per second, one line per client.

#[path = "../tests/support/storm.rs"]
mod storm;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use plotters::prelude::*;
use storm::{Config, Run, drive, drive_fleet, drive_method};
use tower_rebound::Policy;
use tower_rebound::rate_limit::{LimitScope, MemoryStore, RateLimitSettings, Store};
use tower_rebound_testkit::sim::{Fault, SimConfig};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// One line of a chart: a client configuration and the requests that
/// arrived at the server in each second of its run.
type Line = (String, Vec<u64>);

/// Draws server arrivals per second over time, one line per client, to
/// `docs/storm/<file>`.
fn chart(file: &str, title: &str, lines: &[Line]) {
    chart_of(
        file,
        title,
        "requests arriving at the server per second",
        lines,
    );
}

/// Draws `lines` (a count per second, `y` saying of what) over time to
/// `docs/storm/<file>`.
fn chart_of(file: &str, title: &str, y: &str, lines: &[Line]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/storm");
    if let Err(e) = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| draw(&dir.join(file), title, y, lines).map_err(|e| e.to_string()))
    {
        eprintln!("cannot draw docs/storm/{file}: {e}");
    }
}

fn draw(
    path: &std::path::Path,
    title: &str,
    y: &str,
    lines: &[Line],
) -> Result<(), Box<dyn std::error::Error>> {
    // Distinct for readers with the commonest colour blindness, and kept
    // apart by width where two clients send the same load.
    const COLORS: [RGBColor; 6] = [
        RGBColor(0, 114, 178),
        RGBColor(230, 159, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(86, 86, 86),
        RGBColor(213, 94, 0),
    ];
    let seconds = lines.iter().map(|(_, v)| v.len()).max().unwrap_or(1).max(1) as u32;
    let top = lines
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1);
    // Headroom for the legend above the lines.
    let top = top + top / 2 + 1;
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0u32..seconds, 0u64..top)?;
    chart
        .configure_mesh()
        .x_desc("time since the run began (s)")
        .y_desc(y)
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let count = lines.len();
    for (i, (name, values)) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        // The first lines widest, so that a later one drawn over them on the
        // same load leaves them showing at the edges.
        let width = 2 + (count - 1 - i) as u32;
        let style = color.stroke_width(width);
        chart
            .draw_series(LineSeries::new(
                values.iter().enumerate().map(|(s, &n)| (s as u32, n)),
                style,
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.5))
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

/// The server's arrivals per second of `run`, over `seconds` seconds (the
/// server records none after the last request).
fn arrivals(run: &Run, seconds: usize) -> Vec<u64> {
    let mut arrivals = run.server.arrivals.clone();
    arrivals.resize(seconds.max(arrivals.len()), 0);
    arrivals
}

fn header() {
    println!(
        "{:<46} {:>6} {:<36} {:>8} {:>9} {:>9} {:>12} {:>9}",
        "scenario", "rate/s", "client", "calls", "amplif.", "success", "circuit_open", "recovery"
    );
    println!("{}", "-".repeat(144));
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
        "{:<46} {:>6} {:<36} {:>8} {:>8.3}x {:>8.2}% {:>12} {:>9}",
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
        let mut lines = Vec::new();
        for rate in [10.0, 100.0, 1000.0] {
            let config = SimConfig {
                capacity: None,
                faults: vec![Fault::Outage {
                    from: Duration::ZERO,
                    until: secs(60),
                }],
                seed: 1,
                workers: None,
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
                    "{:>44}   amplification of the calls made during the outage: {:.3}x, after it: {:.3}x",
                    "",
                    run.amplification_of(0..outage_calls),
                    run.amplification_of(outage_calls..run.calls),
                );
                println!(
                    "{:>44}   server load during the outage: {:.3}x the offered load",
                    "",
                    run.load_during(0..60, rate),
                );
                if rate == 100.0 {
                    lines.push((client.name().to_owned(), arrivals(&run, 90)));
                }
            }
        }
        chart(
            "1-outage.svg",
            "1. full outage 0-60 s, then 30 s up: 100 calls/s",
            &lines,
        );
        lines.clear();
        for (rate, duration) in [(10.0, 600), (100.0, 60), (1000.0, 60)] {
            let config = SimConfig {
                capacity: None,
                faults: vec![Fault::Random { p: 0.1 }],
                seed: 7,
                workers: None,
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
                if rate == 100.0 {
                    lines.push((client.name().to_owned(), arrivals(&run, duration as usize)));
                }
            }
        }
        chart(
            "2-random-failures.svg",
            "2. 10% random failures: 100 calls/s",
            &lines,
        );
        lines.clear();
        {
            let config = SimConfig {
                capacity: None,
                faults: vec![Fault::Throttle {
                    per_second: 100,
                    retry_after_secs: 1,
                }],
                seed: 1,
                workers: None,
                operations: None,
            };
            for client in Config::ALL {
                let run = drive(client.policy("10s"), config.clone(), 150.0, secs(60), 9).await;
                row("3. throttled above 100/s (429)", 150.0, client, &run, None);
                println!(
                    "{:>44}   429s sent: {}, retries sooner than their Retry-After: {}",
                    "", run.server.throttled, run.server.early_retries
                );
                lines.push((client.name().to_owned(), arrivals(&run, 60)));
            }
        }
        chart(
            "3-throttled.svg",
            "3. throttled above 100/s (429): 150 calls/s",
            &lines,
        );
        lines.clear();
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
                workers: None,
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
                    "{:>44}   server arrivals/s every 10 s: {}",
                    "",
                    arrivals.join(" ")
                );
                if attempt_timeout == "1s" {
                    lines.push((client.name().to_owned(), self::arrivals(&run, 90)));
                }
            }
        }
        chart(
            "4-stall.svg",
            "4. stall 10-20 s, attempt timeout 1 s: 280 calls/s, capacity 300/s",
            &lines,
        );
        lines.clear();
        {
            // Writes at 100/s answered 202; each operation takes 5 s; the
            // server completes 1000 requests/s.
            let config = SimConfig {
                capacity: Some(1000.0),
                faults: vec![],
                seed: 1,
                workers: None,
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
                    "{:>44}   accepted: {}, {lateness}",
                    "",
                    run.count("accepted"),
                );
                lines.push((name.to_owned(), arrivals(&run, 60)));
            }
        }
        chart(
            "5-writes.svg",
            "5. 202 writes, 5 s operations: 100 writes/s",
            &lines,
        );
        fleet().await;
    });
}

/// The fleet scenarios: `processes` processes, each its own stack and so
/// its own retry budget and breakers, against one server.
async fn fleet() {
    let outage = |from: u64, until: u64| SimConfig {
        capacity: None,
        faults: vec![Fault::Outage {
            from: secs(from),
            until: secs(until),
        }],
        seed: 1,
        workers: None,
        operations: None,
    };
    // (scenario, chart file and title, processes, the fleet's calls/s when
    // split among them, outage).
    let outages = [
        (
            "6. outage 0-60 s,",
            (
                "6-fleet-outage.svg",
                "6. fleet outage 0-60 s, then 30 s up: 100 processes at 1 call/s each",
            ),
            [1, 10, 100],
            None,
            (0, 60),
        ),
        (
            "7. outage 30-90 s,",
            (
                "7-fleet-warm-outage.svg",
                "7. fleet up 30 s, outage 30-90 s, 30 s up: 100 processes at 1 call/s each",
            ),
            [1, 10, 100],
            None,
            (30, 90),
        ),
        (
            "8. outage 0-60 s,",
            (
                "8-fleet-split.svg",
                "8. fleet outage 0-60 s, its first 20 s: 100 calls/s split among 1, 10, 100 processes",
            ),
            [1, 10, 100],
            Some(100.0),
            (0, 60),
        ),
    ];
    for (scenario, (file, title), fleets, split, (from, until)) in outages {
        let mut lines = Vec::new();
        for processes in fleets {
            // 1 call/s each, or a total split among them.
            let rate = split.map_or(1.0, |total: f64| total / processes as f64);
            for client in Config::FLEET {
                let seconds = until + 30;
                let run = drive_fleet(
                    || client.policy("10s"),
                    outage(from, until),
                    processes,
                    rate,
                    secs(seconds),
                    3,
                )
                .await;
                let total = rate * processes as f64;
                let recovery = run
                    .recovered_at(until as usize, total, 0.95)
                    .map_or("> 30s".to_owned(), |s| format!("{}s", s - until as usize));
                fleet_row(scenario, processes, total, client, &run, Some(recovery));
                // Calls are numbered in the order they start.
                let first = (total * from as f64) as u64;
                let last = (total * until as f64) as u64;
                println!(
                    "{:>44}   amplification of the calls made during the outage: {:.3}x, after it: {:.3}x",
                    "",
                    run.amplification_of(first..last),
                    run.amplification_of(last..run.calls),
                );
                if split.is_some() {
                    // The same load split more ways: the two budgets alone,
                    // one line per fleet size.
                    if matches!(client, Config::BudgetOnly | Config::FixedBudget) {
                        let plural = if processes == 1 { "" } else { "es" };
                        // The first 20 s, where the budgets are spent.
                        let mut first = arrivals(&run, seconds as usize);
                        first.truncate(20);
                        lines.push((
                            format!("{}, {processes} process{plural}", client.name()),
                            first,
                        ));
                    }
                } else if processes == 100 {
                    lines.push((client.name().to_owned(), arrivals(&run, seconds as usize)));
                }
            }
        }
        chart(file, title, &lines);
    }
    let random = SimConfig {
        capacity: None,
        faults: vec![Fault::Random { p: 0.1 }],
        seed: 7,
        workers: None,
        operations: None,
    };
    let mut lines = Vec::new();
    for processes in [10, 100] {
        for client in Config::FLEET.into_iter().chain([Config::NoRefund]) {
            let run = drive_fleet(
                || client.policy("10s"),
                random.clone(),
                processes,
                1.0,
                secs(60),
                5,
            )
            .await;
            fleet_row(
                "9. 10% random failures,",
                processes,
                processes as f64,
                client,
                &run,
                None,
            );
            if processes == 100 {
                lines.push((client.name().to_owned(), arrivals(&run, 60)));
            }
        }
    }
    chart(
        "9-fleet-random-failures.svg",
        "9. fleet, 10% random failures: 100 processes at 1 call/s each",
        &lines,
    );
    shared_limit().await;
    overload().await;
}

/// Scenario 11: a slow server, 20 workers at 10 ms a request (2,000
/// requests a second at most), offered 4,000 calls a second for 30 s. The
/// requests it holds beyond its workers queue there. With no limit every
/// call is sent, the queue grows by 2,000 a second, and once a wait passes
/// the attempt timeout (1 s here) calls time out, are retried into the same
/// queue, and goodput collapses; an adaptive concurrency limit keeps what
/// the server holds near its workers and refuses the rest at once
/// (`overloaded`).
async fn overload() {
    let config = SimConfig {
        capacity: None,
        faults: Vec::new(),
        seed: 11,
        workers: Some((20, Duration::from_millis(10))),
        operations: None,
    };
    let connio = Config::BudgetOnly.policy("1s");
    let adaptive = tower_rebound::concurrency::ConcurrencySettings::builder()
        .adaptive(true)
        .max_in_flight(1000)
        .build()
        .expect("valid settings");
    let mut lines = Vec::new();
    let rate = 4000.0;
    for (name, policy) in [
        ("rebound connio, no breaker", connio.clone()),
        (
            "... + adaptive concurrency",
            connio.with_concurrency(adaptive),
        ),
    ] {
        let run = drive(policy, config.clone(), rate, secs(30), 11).await;
        named_row(
            "11. slow server: 20 workers x 10 ms, 2x load",
            rate,
            name,
            &run,
            None,
        );
        let ms = |p: f64| run.latency(p).map_or(0, |d| d.as_millis());
        let goodput = run.count("success") as f64 / 30.0;
        let failures: Vec<String> = run
            .outcomes
            .iter()
            .filter(|(outcome, _)| **outcome != "success")
            .map(|(outcome, n)| format!("{outcome} {n}"))
            .collect();
        println!(
            "{:>44}   goodput {goodput:.0}/s of 2000/s; latency of successes p50 {} ms, p99 {} ms; the server held at most {}; {}",
            "",
            ms(50.0),
            ms(99.0),
            run.server.peak_held,
            failures.join(", "),
        );
        let mut good = run.goodput.clone();
        good.resize(good.len().max(32), 0);
        lines.push((name.to_owned(), good));
    }
    chart_of(
        "11-slow-server.svg",
        "11. slow server (20 workers x 10 ms), 4000 calls/s",
        "calls that succeeded per second",
        &lines,
    );
}

/// Scenario 10: an API that allows 200 calls a second per key (429 with
/// `Retry-After: 1` above it), called by 10 processes at 30 calls/s each.
/// Each process learns only from its own 429s, unless they share a rate
/// limit: here through the in-memory store that stands in for Redis (the
/// same interface; `tests/redis.rs` runs the real one). Every caller gives
/// up after 5 s.
async fn shared_limit() {
    let config = SimConfig {
        capacity: None,
        faults: vec![Fault::Throttle {
            per_second: 200,
            retry_after_secs: 1,
        }],
        seed: 3,
        workers: None,
        operations: None,
    };
    // A caller that waits 5 s at most, for its turn and its retries.
    let connio = || {
        Config::Connio
            .policy("10s")
            .with_total_timeout(secs(5))
            .expect("a valid timeout")
    };
    let limit = |per_second: f64| {
        RateLimitSettings::builder()
            .per_second(per_second)
            .burst(10)
            .scope(LimitScope::Policy)
            .build()
            .expect("valid settings")
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    type MakePolicy = Box<dyn Fn() -> Policy>;
    let clients: [(&str, MakePolicy); 3] = [
        ("rebound connio, no rate limit", Box::new(connio)),
        (
            "local limit, 19/s per process",
            Box::new(move || connio().with_rate_limit(limit(19.0))),
        ),
        (
            "shared limit, 190/s (store)",
            Box::new(move || connio().with_rate_limit_store(limit(190.0), Arc::clone(&store))),
        ),
    ];
    let mut lines = Vec::new();
    for (name, policy) in &clients {
        let run = drive_fleet(policy, config.clone(), 10, 30.0, secs(60), 11).await;
        named_row(
            "10. API allows 200/s, 10 processes x 30/s",
            300.0,
            name,
            &run,
            None,
        );
        println!(
            "{:>44}   requests: {}, 429s sent: {} ({:.2}% of requests), rate_limited: {}",
            "",
            run.server.requests,
            run.server.throttled,
            run.server.throttled as f64 * 100.0 / run.server.requests.max(1) as f64,
            run.count("rate_limited"),
        );
        lines.push(((*name).to_owned(), arrivals(&run, 60)));
    }
    chart(
        "10-shared-limit.svg",
        "10. API allows 200/s: 10 processes at 30 calls/s each",
        &lines,
    );
}

/// A row of a fleet scenario: the scenario names the processes, the rate is
/// the fleet's.
fn fleet_row(
    scenario: &str,
    processes: u64,
    rate: f64,
    client: Config,
    run: &Run,
    recovery: Option<String>,
) {
    let plural = if processes == 1 { "" } else { "es" };
    let each = rate / processes as f64;
    row(
        &format!("{scenario} {processes} process{plural} x {each}/s"),
        rate,
        client,
        run,
        recovery,
    );
}
