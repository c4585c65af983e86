//! What a person sees while a call runs: with `-v`, one line per attempt,
//! wait and poll as it happens; on a terminal, a live status line during a
//! wait, gone when the call ends.
//!
//! Both read the stack's typed events (a [`Listener`] added to the policy),
//! not its tracing fields: renaming a span field cannot change them.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tower_rebound::Policy;
use tower_rebound::events::{
    AttemptEnded, AttemptStarted, BreakerTransition, CallEnded, Listener, PollScheduled, PollSent,
    Refusal, RetryRefused, RetryScheduled, WaitReason,
};

/// Keeps the status line until dropped, which clears it.
pub(crate) struct Installed {
    bar: ProgressBar,
}

impl Drop for Installed {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// `policy`, telling `-v`'s lines (when `verbose`) and the status line (when
/// stderr is a terminal) as its calls run; the guard clears the line. The
/// policy is unchanged when neither is asked for or possible.
pub(crate) fn install(policy: Policy, verbose: bool) -> (Policy, Installed) {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    let installed = Installed { bar: bar.clone() };
    if !verbose && bar.is_hidden() {
        return (policy, installed);
    }
    let progress = Progress {
        verbose,
        bar,
        poll: Mutex::new(None),
    };
    (policy.with_listener(progress), installed)
}

struct Progress {
    verbose: bool,
    bar: ProgressBar,
    /// The poll whose status request is in flight: the attempts that follow
    /// a poll's event are that poll's.
    poll: Mutex<Option<u32>>,
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

    fn poll(&self) -> Option<u32> {
        self.poll.lock().ok().and_then(|poll| *poll)
    }
}

impl Listener for Progress {
    fn attempt_started(&self, _: &AttemptStarted<'_>) {
        self.clear();
    }

    fn attempt_ended(&self, e: &AttemptEnded<'_>) {
        let answer = match (e.status(), e.error()) {
            (Some(status), _) => status.as_u16().to_string(),
            (None, Some(error)) => error.as_str().to_owned(),
            (None, None) => "no answer".to_owned(),
        };
        let took = e.duration().as_millis();
        let mut line = match self.poll() {
            // A status request's answer: its class is what the poll says.
            Some(poll) if e.attempt() == 1 => {
                self.say(&format!("poll {poll}: {answer} in {took} ms"));
                return;
            }
            Some(poll) => format!("poll {poll}, attempt {}: {answer}", e.attempt()),
            None => format!("attempt {}: {answer}", e.attempt()),
        };
        if let Some(class) = e.class() {
            let _ = write!(line, " ({})", class.as_str());
        }
        let mut codes = e.api_errors().iter().filter_map(|a| a.code()).peekable();
        if codes.peek().is_some() {
            let codes: Vec<&str> = codes.collect();
            let _ = write!(line, " [{}]", codes.join(","));
        }
        let _ = write!(line, " in {took} ms");
        self.say(&line);
    }

    fn retry_scheduled(&self, e: &RetryScheduled<'_>) {
        let next = e.attempt() + 1;
        let of = e.max_attempts();
        let reason = e.wait().as_str();
        let why = match e.wait() {
            WaitReason::RetryAfter => "for Retry-After",
            WaitReason::RateLimit => "for the RateLimit reset",
            WaitReason::XRateLimitReset => "for X-RateLimit-Reset",
            WaitReason::RetryDelay => "for the retry delay in the error body",
            _ => "to back off",
        };
        let what = match self.poll() {
            Some(poll) => format!("attempt {next} of {of} of poll {poll}"),
            None => format!("attempt {next} of {of}"),
        };
        self.say(&format!(
            "waiting {} ms ({reason}) before {what}",
            e.delay().as_millis()
        ));
        self.wait(e.delay(), format!("{why}, {what}"));
    }

    fn retry_refused(&self, e: &RetryRefused<'_>) {
        let words = match e.refusal() {
            Refusal::Budget => "the retry budget refused another attempt",
            Refusal::Deadline => "no time left within timeouts.total",
            Refusal::NotReplayable => "the request body cannot be sent again",
            Refusal::RetryAfter => "the server asked to wait longer than retry.max_retry_after",
            Refusal::UnsafeMethod => {
                "the request may have been processed, and is not safe to send twice"
            }
            other => other.as_str(),
        };
        self.say(&format!("not retrying: {words}"));
    }

    fn breaker_transition(&self, e: &BreakerTransition<'_>) {
        self.say(&format!(
            "circuit breaker for {}: {} -> {}",
            e.key(),
            e.from().as_str(),
            e.to().as_str()
        ));
    }

    fn poll_scheduled(&self, e: &PollScheduled<'_>) {
        let reason = e.wait().as_str();
        let why = match e.wait() {
            tower_rebound::events::PollWait::RetryAfter => "for Retry-After",
            _ => "for the poll interval",
        };
        self.say(&format!(
            "waiting {} ms ({reason}) before poll {}",
            e.delay().as_millis(),
            e.poll()
        ));
        self.wait(
            e.delay(),
            format!("{why}, poll {} of the operation", e.poll()),
        );
    }

    fn poll_sent(&self, e: &PollSent<'_>) {
        self.clear();
        if let Ok(mut poll) = self.poll.lock() {
            *poll = Some(e.poll());
        }
    }

    fn call_ended(&self, e: &CallEnded<'_>) {
        self.clear();
        if let Ok(mut poll) = self.poll.lock() {
            *poll = None;
        }
        let outcome = e.outcome().as_str();
        if outcome == "circuit_open" {
            self.say(&format!(
                "the circuit breaker for {} is open: the call was not sent",
                e.target().host()
            ));
        }
        self.say(&format!(
            "call: {outcome} in {} ms",
            e.duration().as_millis()
        ));
    }
}
