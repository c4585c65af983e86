//! The live line a load run shows on a terminal: calls started, in flight,
//! each outcome so far, and the time gone; cleared when the run ends, so
//! that stdout and what is left on stderr are the report alone.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::lock;
use super::tally::Tally;

/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(200);

/// The line, while it is shown.
pub(crate) struct Live {
    bar: ProgressBar,
    ticker: Option<JoinHandle<()>>,
}

/// What the line reads from the run.
pub(crate) struct Watched {
    pub(crate) tally: Arc<Mutex<Tally>>,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) max_in_flight: usize,
    pub(crate) started: Instant,
    pub(crate) duration: Duration,
}

impl Live {
    /// Shows the line on stderr when it is a terminal; nothing otherwise.
    pub(crate) fn start(watched: Watched) -> Live {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if bar.is_hidden() {
            return Live { bar, ticker: None };
        }
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(EVERY);
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                let in_flight = watched.max_in_flight - watched.slots.available_permits();
                let message = {
                    let tally = lock(&watched.tally);
                    line(
                        &tally,
                        in_flight,
                        watched.started.elapsed(),
                        watched.duration,
                    )
                };
                shown.set_message(message);
            }
        });
        Live {
            bar,
            ticker: Some(ticker),
        }
    }

    /// Prints `text` on stderr, above the line.
    pub(crate) fn say(&self, text: &str) {
        self.bar.suspend(|| eprintln!("{text}"));
    }

    /// What prints above the line, for a task of its own.
    pub(crate) fn sayer(&self) -> impl Fn(&str) + Send + 'static {
        let bar = self.bar.clone();
        move |text| bar.suspend(|| eprintln!("{text}"))
    }

    /// Takes the line away.
    pub(crate) fn finish(self) {
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
        self.bar.finish_and_clear();
    }
}

/// `412 calls, 3 in flight, success 400, retries_exhausted 9, 2.1s / 10s`.
fn line(tally: &Tally, in_flight: usize, elapsed: Duration, duration: Duration) -> String {
    let mut out = format!("{} calls, {in_flight} in flight", tally.calls());
    if tally.dropped() > 0 {
        let _ = write!(out, ", dropped {}", tally.dropped());
    }
    for (name, count) in tally.counts() {
        let _ = write!(out, ", {name} {count}");
    }
    let _ = write!(
        out,
        ", {:.1}s / {}s",
        elapsed.as_secs_f64(),
        duration.as_secs_f64()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_calls_in_flight_outcomes_and_time() {
        let mut tally = Tally::default();
        for _ in 0..3 {
            tally.start();
        }
        tally.end("success", 1, Duration::from_millis(1));
        tally.drop_call();
        assert_eq!(
            line(
                &tally,
                2,
                Duration::from_millis(2140),
                Duration::from_secs(10)
            ),
            "4 calls, 2 in flight, dropped 1, success 1, 2.1s / 10s"
        );
    }
}
