//! `rebound demo --metrics`: after the table, the metrics of its calls in
//! Prometheus's text format, every family with the values the table
//! implies.

use std::collections::BTreeMap;
use std::process::Command;

const HEADING: &str = "The metrics of these calls, in Prometheus's text format:";

/// Runs `rebound demo --metrics ARGS`, and returns the table's rows (by
/// column) and the metrics' text.
fn demo(args: &[&str]) -> (Vec<Vec<String>>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_rebound"))
        .args(["demo", "--metrics"])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the rebound binary");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let (table, metrics) = stdout
        .split_once(HEADING)
        .unwrap_or_else(|| panic!("no metrics in\n{stdout}"));
    let rows = table
        .lines()
        .skip(2)
        .take_while(|line| !line.trim().is_empty())
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect();
    (rows, metrics.trim_start().to_owned())
}

/// One sample: its name, labels and value.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let labels = rest
                        .trim_end_matches('}')
                        .split("\",")
                        .map(|pair| {
                            let (key, value) = pair.split_once("=\"").unwrap();
                            (key.to_owned(), value.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, BTreeMap::new()),
            };
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().unwrap(),
            }
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include `labels`.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

#[test]
fn the_demo_prints_the_metrics_of_its_calls() {
    let (rows, text) = demo(&[]);
    assert_eq!(rows.len(), 16, "{rows:?}");
    let samples = samples(&text);

    // Every family, typed, under the name Prometheus recommends.
    for (family, kind) in [
        ("http_client_request_duration_seconds", "histogram"),
        ("rebound_call_duration_seconds", "histogram"),
        ("rebound_retries_total", "counter"),
        ("rebound_breaker_transitions_total", "counter"),
        ("rebound_breaker_open", "gauge"),
        ("rebound_polls_total", "counter"),
    ] {
        let line = format!("# TYPE {family} {kind}\n");
        assert!(text.contains(&line), "no {line:?} in\n{text}");
    }

    // One call record per row, one request record per attempt and poll
    // sent (the table counts attempts sent, not the one the breaker
    // stopped), OpenTelemetry's buckets.
    let calls = total(&samples, "rebound_call_duration_seconds_count", &[]);
    assert_eq!(calls, rows.len() as f64);
    let sent: u32 = rows
        .iter()
        .map(|r| r[4].parse::<u32>().unwrap() + r[5].parse::<u32>().unwrap())
        .sum();
    let requests = total(&samples, "http_client_request_duration_seconds_count", &[]);
    assert_eq!(requests, f64::from(sent));
    for family in [
        "http_client_request_duration_seconds",
        "rebound_call_duration_seconds",
    ] {
        for le in ["0.005", "0.075", "1", "2.5", "10", "+Inf"] {
            let bucket = format!("{family}_bucket");
            let in_le = total(&samples, &bucket, &[("le", le)]);
            assert!(in_le > 0.0 || le == "0.005", "{bucket} le={le}");
        }
        // Everything is within +Inf.
        let count = total(&samples, &format!("{family}_count"), &[]);
        let inf = total(&samples, &format!("{family}_bucket"), &[("le", "+Inf")]);
        assert_eq!(count, inf);
    }
    // The calls by outcome, as the table says.
    for outcome in ["success", "terminal", "transport", "circuit_open"] {
        let in_table = rows.iter().filter(|r| r[2] == outcome).count();
        let recorded = total(
            &samples,
            "rebound_call_duration_seconds_count",
            &[("rebound_outcome", outcome)],
        );
        assert_eq!(recorded, in_table as f64, "{outcome}");
    }
    // A failed answer's error.type is its status; no answer, the kind.
    let answered_404 = [("http_response_status_code", "404"), ("error_type", "404")];
    assert_eq!(
        total(
            &samples,
            "http_client_request_duration_seconds_count",
            &answered_404
        ),
        1.0
    );
    let refused = total(
        &samples,
        "http_client_request_duration_seconds_count",
        &[("error_type", "transport")],
    );
    assert_eq!(refused, 10.0, "4 + 4 + 2 attempts to the host that is down");

    // 429 once, 500 twice, the overloaded host's three; three retries for
    // each refused connection to the host that is down, and the third
    // call's one before its breaker opened.
    let retries = |reason| {
        total(
            &samples,
            "rebound_retries_total",
            &[("rebound_retry_reason", reason)],
        )
    };
    assert_eq!((retries("status"), retries("transport")), (6.0, 8.0));
    let opened = [("rebound_breaker_state", "open")];
    assert_eq!(
        total(&samples, "rebound_breaker_transitions_total", &opened),
        1.0
    );
    assert_eq!(total(&samples, "rebound_breaker_open", &[]), 1.0);
    assert_eq!(total(&samples, "rebound_polls_total", &[]), 3.0);
    // Hosts, never paths.
    assert!(!text.contains("/v3/"), "{text}");
    assert!(
        samples
            .iter()
            .filter_map(|s| s.labels.get("server_address"))
            .all(|host| host == "127.0.0.1")
    );
}

#[test]
fn a_spent_budget_shows_in_the_refusals() {
    let dir =
        std::env::temp_dir().join(format!("tower-rebound-cli-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tight-budget.toml");
    std::fs::write(
        &path,
        "extends = \"connio\"\n[retry.budget]\ncapacity = 1\n",
    )
    .unwrap();
    let (rows, text) = demo(&["--policy", path.to_str().unwrap()]);
    let samples = samples(&text);
    assert!(
        text.contains("# TYPE rebound_retries_refused_total counter\n"),
        "{text}"
    );
    let spent = rows.iter().filter(|r| r[2] == "budget_exhausted").count();
    assert!(spent > 0, "{rows:?}");
    let refused = total(
        &samples,
        "rebound_retries_refused_total",
        &[("rebound_refusal", "budget")],
    );
    assert!(refused >= spent as f64, "{refused} refusals, {spent} calls");
}
