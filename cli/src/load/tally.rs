//! What a load run counts: calls, drops, requests sent, and each outcome's
//! count and latencies; and the table and JSON object that show them.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use tower_rebound::{ErrorKind, Outcome};

/// The name a call gets when it was still in flight at the end of the grace
/// period after Ctrl-C, and was given up on.
pub(crate) const ABANDONED: &str = "abandoned";

/// Where `name` stands in the table: the outcome table's order (the
/// library's own: success, accepted, then each error kind), then
/// [`ABANDONED`], then names it does not know.
fn rank(name: &str) -> usize {
    let outcomes = [Outcome::Success, Outcome::Accepted]
        .into_iter()
        .chain(ErrorKind::ALL.iter().copied().map(Outcome::from));
    let count = 2 + ErrorKind::ALL.len();
    match outcomes.map(Outcome::as_str).position(|n| n == name) {
        Some(at) => at,
        None if name == ABANDONED => count,
        None => count + 1,
    }
}

/// The percentiles the report gives, with their names.
const PERCENTILES: [(&str, f64); 3] = [("p50", 0.50), ("p90", 0.90), ("p99", 0.99)];

/// The counts of a run so far.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    calls: u64,
    dropped: u64,
    requests: u64,
    /// In the table's order ([`rank`]).
    endings: Vec<Ending>,
}

#[derive(Debug)]
struct Ending {
    name: &'static str,
    count: u64,
    /// Microseconds, to three significant digits.
    latency: Histogram<u64>,
}

impl Tally {
    /// A call started.
    pub(crate) fn start(&mut self) {
        self.calls += 1;
    }

    /// A call was due when `--max-in-flight` calls were in flight, and was
    /// not made.
    pub(crate) fn drop_call(&mut self) {
        self.calls += 1;
        self.dropped += 1;
    }

    /// A started call ended as `name` after sending `requests` requests
    /// (attempts and polls), `latency` after it started.
    pub(crate) fn end(&mut self, name: &'static str, requests: u64, latency: Duration) {
        self.requests += requests;
        let at = match self.endings.iter().position(|e| e.name == name) {
            Some(at) => at,
            None => {
                let at = self
                    .endings
                    .iter()
                    .position(|e| rank(e.name) > rank(name))
                    .unwrap_or(self.endings.len());
                let latency = Histogram::new(3).expect("3 significant digits are in range");
                self.endings.insert(
                    at,
                    Ending {
                        name,
                        count: 0,
                        latency,
                    },
                );
                at
            }
        };
        let ending = &mut self.endings[at];
        ending.count += 1;
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // `record` grows the histogram to fit; only past u64's range does
        // it fail, and then the highest value it holds will do.
        if ending.latency.record(micros).is_err() {
            ending.latency.saturating_record(micros);
        }
    }

    /// Calls started or dropped.
    pub(crate) fn calls(&self) -> u64 {
        self.calls
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// How many calls ended as each name, in the table's order.
    pub(crate) fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.endings.iter().map(|e| (e.name, e.count))
    }

    /// Requests per call; 0 before any call.
    fn amplification(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.requests as f64 / self.calls as f64
        }
    }

    /// The report as one JSON object.
    pub(crate) fn to_json(&self) -> Value {
        let mut outcomes = Map::new();
        let mut latency = Map::new();
        for ending in &self.endings {
            outcomes.insert(ending.name.to_owned(), ending.count.into());
            let mut numbers = Map::new();
            for (name, value) in ending.latencies_ms() {
                numbers.insert(name.to_owned(), json!(value));
            }
            latency.insert(ending.name.to_owned(), numbers.into());
        }
        json!({
            "calls": self.calls,
            "dropped": self.dropped,
            "outcomes": outcomes,
            "requests": self.requests,
            "amplification": self.amplification(),
            "latency_ms": latency,
        })
    }

    /// The report as a table, for people.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let totals = [
            ("calls", self.calls.to_string()),
            ("dropped", self.dropped.to_string()),
            ("requests", self.requests.to_string()),
            ("amplification", format!("{:.2}", self.amplification())),
        ];
        let width = totals.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        for (name, value) in totals {
            let _ = writeln!(out, "{name:<14} {value:>width$}");
        }
        if self.endings.is_empty() {
            return out;
        }
        let header = ["outcome", "calls", "p50 ms", "p90 ms", "p99 ms", "max ms"];
        let rows: Vec<[String; 6]> = self
            .endings
            .iter()
            .map(|e| {
                let ms = e.latencies_ms();
                [
                    e.name.to_owned(),
                    e.count.to_string(),
                    format!("{:.2}", ms[0].1),
                    format!("{:.2}", ms[1].1),
                    format!("{:.2}", ms[2].1),
                    format!("{:.2}", ms[3].1),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let line = |out: &mut String, cells: [&str; 6]| {
            let mut text = format!("{:<w$}", cells[0], w = widths[0]);
            for (cell, width) in cells.iter().zip(widths).skip(1) {
                let _ = write!(text, "  {cell:>width$}");
            }
            let _ = writeln!(out, "{}", text.trim_end());
        };
        out.push('\n');
        line(&mut out, header);
        for row in &rows {
            line(&mut out, row.each_ref().map(String::as_str));
        }
        out
    }
}

impl Ending {
    /// p50, p90, p99 and max, in milliseconds.
    fn latencies_ms(&self) -> [(&'static str, f64); 4] {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let [p50, p90, p99] = PERCENTILES.map(|(name, q)| {
            let at = self.latency.value_at_quantile(q);
            (name, ms(at))
        });
        [p50, p90, p99, ("max", ms(self.latency.max()))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn calls_drops_and_requests_add_up() {
        let mut tally = Tally::default();
        for i in 0..100 {
            tally.start();
            tally.end("success", 1 + (i % 2), ms(i + 1));
        }
        tally.start();
        tally.end("retries_exhausted", 4, ms(400));
        tally.drop_call();
        let json = tally.to_json();
        assert_eq!(json["calls"], 102);
        assert_eq!(json["dropped"], 1);
        assert_eq!(json["requests"], 154);
        assert_eq!(json["amplification"], 154.0 / 102.0);
        assert_eq!(
            json["outcomes"],
            json!({"success": 100, "retries_exhausted": 1})
        );
        // Three significant digits: each value is held to within 0.1 %.
        let near = |value: &Value, expected: f64| {
            let value = value.as_f64().unwrap();
            assert!(
                (expected..=expected * 1.001).contains(&value),
                "{value} for {expected}"
            );
        };
        let success = &json["latency_ms"]["success"];
        near(&success["p50"], 50.0);
        near(&success["p90"], 90.0);
        near(&success["p99"], 99.0);
        near(&success["max"], 100.0);
        near(&json["latency_ms"]["retries_exhausted"]["p50"], 400.0);
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys.len(),
            6,
            "calls, dropped, outcomes, requests, amplification, latency_ms: {keys:?}"
        );
    }

    #[test]
    fn no_calls_is_zero_amplification_and_no_outcomes() {
        let tally = Tally::default();
        let json = tally.to_json();
        assert_eq!(json["amplification"], 0.0);
        assert_eq!(json["outcomes"], json!({}));
        assert_eq!(json["latency_ms"], json!({}));
        assert!(tally.table().starts_with("calls"));
    }

    #[test]
    fn the_table_lists_outcomes_in_the_outcome_tables_order() {
        let mut tally = Tally::default();
        for name in [ABANDONED, "transport", "success", "new_outcome", "accepted"] {
            tally.start();
            tally.end(name, 1, ms(2));
        }
        let names: Vec<&str> = tally.counts().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            ["success", "accepted", "transport", ABANDONED, "new_outcome"]
        );
        let table = tally.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "calls             5");
        assert_eq!(lines[3], "amplification  1.00");
        assert_eq!(
            lines[5],
            "outcome      calls  p50 ms  p90 ms  p99 ms  max ms"
        );
        assert_eq!(
            lines[6],
            "success          1    2.00    2.00    2.00    2.00"
        );
        assert_eq!(lines.len(), 11);
    }
}
