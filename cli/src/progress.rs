//! What a person sees while a call runs: with `-v`, one line per attempt,
//! wait and poll as it happens; on a terminal, a live status line during a
//! wait, gone when the call ends.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Keeps the progress reporting installed on this thread until dropped.
pub(crate) struct Installed {
    _guard: Option<tracing::subscriber::DefaultGuard>,
    bar: ProgressBar,
}

impl Drop for Installed {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Installs, on this thread, `-v`'s lines (when `verbose`) and the status
/// line (when stderr is a terminal). Nothing at all when neither is asked
/// for or possible.
pub(crate) fn install(verbose: bool) -> Installed {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    if !verbose && bar.is_hidden() {
        return Installed { _guard: None, bar };
    }
    let layer = Progress {
        verbose,
        bar: bar.clone(),
        spans: Mutex::new(HashMap::new()),
    };
    let subscriber = tracing_subscriber::registry().with(
        layer.with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("tower_rebound", tracing::Level::INFO),
        ),
    );
    Installed {
        _guard: Some(tracing::subscriber::set_default(subscriber)),
        bar,
    }
}

struct Progress {
    verbose: bool,
    bar: ProgressBar,
    /// Each open span of interest: its fields and when it opened.
    spans: Mutex<HashMap<Id, SpanSeen>>,
}

struct SpanSeen {
    name: &'static str,
    opened: Instant,
    fields: Fields,
    /// Whether its line was printed before it closed.
    said: bool,
}

#[derive(Default)]
struct Fields(HashMap<&'static str, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }
}

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(|v| v.parse().ok())
    }
}

impl Progress {
    fn say(&self, line: &str) {
        if self.verbose {
            // Printed above the status line, which stays where it is.
            self.bar.suspend(|| eprintln!("* {line}"));
        }
    }

    /// Shows `what` with the seconds left of a wait of `delay`.
    fn wait(&self, delay: Duration, what: String) {
        if self.bar.is_hidden() || delay < Duration::from_secs(1) {
            return;
        }
        let ends = Instant::now() + delay;
        let style = ProgressStyle::with_template("{spinner} waiting {left} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .with_key(
                "left",
                move |_: &ProgressState, out: &mut dyn fmt::Write| {
                    let left = ends.saturating_duration_since(Instant::now());
                    let _ = write!(out, "{} s", left.as_secs_f64().ceil() as u64);
                },
            );
        self.bar.set_style(style);
        self.bar.set_message(what);
        self.bar.enable_steady_tick(Duration::from_millis(200));
    }

    fn clear(&self) {
        self.bar.disable_steady_tick();
        self.bar.set_message("");
        self.bar.set_style(
            ProgressStyle::with_template("").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        self.bar.tick();
    }
}

impl<S> Layer<S> for Progress
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let name = attrs.metadata().name();
        if !matches!(name, "rebound.call" | "rebound.attempt" | "rebound.poll") {
            return;
        }
        if name != "rebound.call" {
            self.clear();
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Ok(mut spans) = self.spans.lock() {
            spans.insert(
                id.clone(),
                SpanSeen {
                    name,
                    opened: Instant::now(),
                    fields,
                    said: false,
                },
            );
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(seen) = self.spans.lock().ok().as_mut().and_then(|s| s.get_mut(id)) {
            values.record(&mut seen.fields);
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let Some(seen) = self.spans.lock().ok().and_then(|mut s| s.remove(&id)) else {
            return;
        };
        if seen.said {
            return;
        }
        self.say_span(&seen);
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        // An attempt's end is recorded before the decision it leads to: say
        // it first.
        self.flush_attempts();
        let mut f = Fields::default();
        event.record(&mut f);
        let delay = Duration::from_millis(f.number("delay_ms").unwrap_or(0));
        let reason = f.get("reason").unwrap_or("");
        match f.get("message").unwrap_or("") {
            "retrying" => {
                let next = f.number("attempt").unwrap_or(0) + 1;
                let of = f
                    .number("max_attempts")
                    .map_or_else(String::new, |max| format!(" of {max}"));
                let why = match reason {
                    "retry_after" => "for Retry-After",
                    "backoff" => "to back off",
                    other => other,
                };
                self.say(&format!(
                    "waiting {} ms ({reason}) before attempt {next}{of}",
                    delay.as_millis()
                ));
                self.wait(delay, format!("{why}, attempt {next}{of}"));
            }
            "polling" => {
                let poll = f.number("poll").unwrap_or(0);
                let why = if reason == "retry_after" {
                    "for Retry-After"
                } else {
                    "for the poll interval"
                };
                self.say(&format!(
                    "waiting {} ms ({reason}) before poll {poll}",
                    delay.as_millis()
                ));
                self.wait(delay, format!("{why}, poll {poll} of the operation"));
            }
            "not retrying" => {
                let words = match reason {
                    "budget" => "the retry budget refused another attempt",
                    "deadline" => "no time left within timeouts.total",
                    other => other,
                };
                self.say(&format!("not retrying: {words}"));
            }
            "circuit breaker state changed" => {
                let key = f.get("key").unwrap_or("");
                let from = f.get("from").unwrap_or("");
                let to = f.get("to").unwrap_or("");
                self.say(&format!("circuit breaker for {key}: {from} -> {to}"));
            }
            "status url refused" => self.say(&format!("status url refused: {reason}")),
            _ => {}
        }
    }
}

impl Progress {
    /// Says the attempts that have ended (their answer is recorded) and
    /// whose span is still open.
    fn flush_attempts(&self) {
        let Ok(mut spans) = self.spans.lock() else {
            return;
        };
        let mut ended: Vec<&mut SpanSeen> = spans
            .values_mut()
            .filter(|s| {
                s.name == "rebound.attempt"
                    && !s.said
                    && (s.fields.get("http.response.status_code").is_some()
                        || s.fields.get("error.type").is_some())
            })
            .collect();
        ended.sort_by_key(|s| s.opened);
        for seen in ended {
            seen.said = true;
            self.say_span(seen);
        }
    }

    fn say_span(&self, seen: &SpanSeen) {
        let took = seen.opened.elapsed().as_millis();
        let f = &seen.fields;
        let answer = match (f.get("http.response.status_code"), f.get("error.type")) {
            (Some(status), _) => status.to_owned(),
            (None, Some(error)) => error.to_owned(),
            (None, None) => "no answer".to_owned(),
        };
        match seen.name {
            "rebound.attempt" => {
                let n = f.number("http.request.resend_count").unwrap_or(0) + 1;
                let mut line = format!("attempt {n}: {answer}");
                if let Some(class) = f.get("rebound.class") {
                    let _ = write!(line, " ({class})");
                }
                if let Some(codes) = f.get("rebound.error_codes") {
                    let _ = write!(line, " [{codes}]");
                }
                let _ = write!(line, " in {took} ms");
                self.say(&line);
            }
            "rebound.poll" => {
                let n = f.number("rebound.poll").unwrap_or(0);
                self.say(&format!("poll {n}: {answer} in {took} ms"));
            }
            _ => {
                self.clear();
                let outcome = f.get("rebound.outcome").unwrap_or("unknown");
                if outcome == "circuit_open" {
                    let host = f.get("server.address").unwrap_or("the host");
                    self.say(&format!(
                        "the circuit breaker for {host} is open: the call was not sent"
                    ));
                }
                self.say(&format!("call: {outcome} in {took} ms"));
            }
        }
    }
}
