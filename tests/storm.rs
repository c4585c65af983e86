//! The storm simulation, scaled down: a full outage and its recovery, 10%
//! random failures and 202 writes, for one process and for a fleet of 100,
//! with the bounds rebound promises. On paused time, so it runs in a moment.

#[path = "support/storm.rs"]
mod storm;

use std::time::Duration;

use storm::{Config, Run, drive, drive_fleet, drive_method};
use tower_rebound_testkit::sim::{Fault, SimConfig};

fn outage(secs: u64) -> SimConfig {
    SimConfig {
        capacity: None,
        faults: vec![Fault::Outage {
            from: Duration::ZERO,
            until: Duration::from_secs(secs),
        }],
        seed: 1,
        workers: None,
        operations: None,
    }
}

fn random(p: f64) -> SimConfig {
    SimConfig {
        capacity: None,
        faults: vec![Fault::Random { p }],
        seed: 7,
        workers: None,
        operations: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_outage_is_not_amplified_at_low_and_high_rates() {
    for rate in [10.0, 100.0, 1000.0] {
        // Scenario 1: 60 s of outage, then 30 s up.
        let run = drive(
            Config::Connio.policy("10s"),
            outage(60),
            rate,
            Duration::from_secs(90),
            3,
        )
        .await;
        let bare = drive(
            Config::NoRetries.policy("10s"),
            outage(60),
            rate,
            Duration::from_secs(90),
            3,
        )
        .await;
        // During the outage the host gets at most 5% of the offered load:
        // the trip and the probes.
        let load = run.load_during(0..60, rate);
        assert!(load <= 0.05, "{rate}/s: {load:.3}x {run:?}");
        // Counted by the calls made during the outage, whenever each request
        // was sent (the calls that waited for the probe that found the host
        // back are sent after it), at most 10%.
        let during = 0..(rate * 60.0) as u64;
        let amplification = run.amplification_of(during);
        assert!(
            amplification <= 0.10,
            "{rate}/s: {amplification:.3}x {run:?}"
        );
        assert!(run.count("circuit_open") > 0);
        // And the breaker costs no goodput: within a point of no retries.
        assert!(
            run.success_share() >= bare.success_share() - 0.01,
            "{rate}/s: {:.4} against {:.4}",
            run.success_share(),
            bare.success_share()
        );
        // The retry budget alone holds the load too, at one request a call.
        let budget = drive(
            Config::BudgetOnly.policy("10s"),
            outage(60),
            rate,
            Duration::from_secs(60),
            3,
        )
        .await;
        assert!(
            budget.amplification() <= 1.05,
            "{rate}/s budget only: {:.3}x",
            budget.amplification()
        );
        assert_eq!(budget.count("circuit_open"), 0);
        // Plain retries for comparison: every call tries 4 times.
        let plain = drive(
            Config::PlainRetries.policy("10s"),
            outage(60),
            rate,
            Duration::from_secs(60),
            3,
        )
        .await;
        assert!(
            plain.amplification() > 3.9,
            "{rate}/s plain: {:.3}x",
            plain.amplification()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn ten_percent_failures_almost_all_succeed_with_little_amplification() {
    // At least 6,000 calls per rate: the expected amplification is 1.111x,
    // and over 600 calls chance alone moves it by about 0.015.
    for (rate, secs) in [(10.0, 600), (100.0, 60)] {
        let run = drive(
            Config::Connio.policy("10s"),
            random(0.1),
            rate,
            Duration::from_secs(secs),
            5,
        )
        .await;
        assert!(
            run.success_share() >= 0.999,
            "{rate}/s: {:.4} {run:?}",
            run.success_share()
        );
        assert!(
            run.amplification() <= 1.12,
            "{rate}/s: {:.3}x",
            run.amplification()
        );
        assert_eq!(
            run.count("circuit_open"),
            0,
            "{rate}/s: the breaker never trips by chance"
        );
    }
}

/// Healthy for `from` seconds, then a full outage until `until`.
fn outage_between(from: u64, until: u64) -> SimConfig {
    SimConfig {
        capacity: None,
        faults: vec![Fault::Outage {
            from: Duration::from_secs(from),
            until: Duration::from_secs(until),
        }],
        seed: 1,
        workers: None,
        operations: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_quiet_process_keeps_every_call_the_host_could_answer() {
    // Scenario 7 for one process: 1 call/s, up 30 s, down 60 s, up 30 s.
    // Too quiet to burden the host, it never trips its breaker, and so
    // loses no call after the outage to a breaker still open.
    let run = drive(
        Config::Connio.policy("10s"),
        outage_between(30, 90),
        1.0,
        Duration::from_secs(120),
        3,
    )
    .await;
    let bare = drive(
        Config::NoRetries.policy("10s"),
        outage_between(30, 90),
        1.0,
        Duration::from_secs(120),
        3,
    )
    .await;
    assert!(
        run.success_share() >= 0.495 && run.success_share() >= bare.success_share() - 0.005,
        "{:.4} against {:.4}: {:?}",
        run.success_share(),
        bare.success_share(),
        run.outcomes
    );
    let recovered = run.recovered_at(90, 1.0, 0.95).expect("it recovers");
    assert!(recovered <= 91, "recovered at {recovered} s");
    assert_eq!(run.count("circuit_open"), 0, "{:?}", run.outcomes);
    // Its budget still bounds what it sends during the outage.
    assert!(
        run.load_during(30..90, 1.0) <= 1.1,
        "{:.3}x",
        run.load_during(30..90, 1.0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_fleet_of_slow_processes_does_not_amplify_an_outage() {
    // 100 processes at 1 call/s each, healthy for 30 s, then 60 s of
    // outage, then 10 s up; the budget alone, no breaker.
    let fleet = |config: Config| {
        drive_fleet(
            move || config.policy("10s"),
            outage_between(30, 90),
            100,
            1.0,
            Duration::from_secs(100),
            3,
        )
    };
    let during = 3000..9000;
    let run = fleet(Config::BudgetOnly).await;
    assert_eq!(run.calls, 10_000);
    assert!(
        run.amplification_of(during.clone()) <= 1.05,
        "during the outage: {:.4}x",
        run.amplification_of(during.clone())
    );
    assert!(
        run.amplification() <= 1.05,
        "whole run: {:.4}x",
        run.amplification()
    );
    assert_eq!(run.count("circuit_open"), 0);
    // Every call made while the server was up succeeded.
    assert_eq!(run.count("success"), 4000, "{:?}", run.outcomes);
    // The fixed budget of 20 is a third of each process's outage calls.
    let fixed = fleet(Config::FixedBudget).await;
    assert!(
        fixed.amplification_of(during.clone()) > 1.3,
        "fixed budget: {:.4}x",
        fixed.amplification_of(during)
    );
}

#[tokio::test(start_paused = true)]
async fn a_fleet_of_slow_processes_rides_out_ten_percent_failures() {
    // 100 processes at 1 call/s each for 60 s: each holds only 3 tokens, and
    // refunds keep random failures from draining them.
    let run = drive_fleet(
        || Config::BudgetOnly.policy("10s"),
        random(0.1),
        100,
        1.0,
        Duration::from_secs(60),
        5,
    )
    .await;
    assert_eq!(run.calls, 6000);
    assert!(
        run.success_share() >= 0.999,
        "{:.4} {:?}",
        run.success_share(),
        run.outcomes
    );
    assert!(run.amplification() <= 1.12, "{:.4}x", run.amplification());
}

#[tokio::test(start_paused = true)]
async fn a_write_has_its_result_at_the_first_poll_after_its_operation_ends() {
    let config = SimConfig {
        capacity: None,
        faults: vec![],
        seed: 1,
        workers: None,
        operations: Some(Duration::from_secs(5)),
    };
    let run = drive_method(
        Config::Connio.policy("10s"),
        config,
        10.0,
        Duration::from_secs(10),
        13,
        http::Method::POST,
    )
    .await;
    assert_eq!(run.count("success"), run.calls, "{run:?}");
    assert_eq!(run.lateness.len() as u64, run.calls);
    // Polls 1, 2.5, 4.75 and 8.125 s after the 202: the last comes 3.125 s
    // after a 5 s operation ends. The server answers at once, so every write
    // is exactly that late.
    let lateness = run.lateness_summary().expect("writes with results");
    assert_eq!(lateness.max, Duration::from_millis(3125), "{lateness:?}");
    assert_eq!(lateness.mean, lateness.max, "{lateness:?}");
}

fn goodput(seconds: &[u64]) -> Run {
    Run {
        goodput: seconds.to_vec(),
        ..Run::default()
    }
}

#[test]
fn recovery_is_the_first_of_three_good_seconds_up_to_the_last_three() {
    // At 10 calls/s, 95% is 9.5: 10 counts, 9 does not.
    let recovered = |seconds: &[u64], from| goodput(seconds).recovered_at(from, 10.0, 0.95);
    // Good only in the last 3 seconds of the run.
    assert_eq!(recovered(&[0, 0, 0, 10, 10, 10], 0), Some(3));
    assert_eq!(recovered(&[10, 10, 10], 0), Some(0));
    // A dip restarts the count.
    assert_eq!(recovered(&[10, 10, 9, 10, 10, 10, 10], 0), Some(3));
    // The search starts at `from`, and needs 3 seconds from there.
    assert_eq!(recovered(&[10, 10, 10, 10, 10], 2), Some(2));
    assert_eq!(recovered(&[10, 10, 10, 10, 10], 3), None);
    // Two good seconds at the end are not a recovery.
    assert_eq!(recovered(&[0, 0, 0, 10, 10], 0), None);
    assert_eq!(recovered(&[10, 10], 0), None);
    assert_eq!(recovered(&[], 0), None);
}
