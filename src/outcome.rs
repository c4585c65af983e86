//! The outcome vocabulary: how every call ends.

use std::fmt;

use crate::error::ErrorKind;
use crate::status::StatusClass;

/// How a call ended: exactly one outcome per call.
///
/// [`as_str`](Outcome::as_str) gives the names the `rebound` CLI prints and the
/// `rebound.outcome` span field records. Every failure outcome corresponds to
/// one [`ErrorKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A success status (after polling, if any).
    Success,
    /// A pollable status (`202 Accepted`) returned as it is: the operation
    /// goes on at the server.
    Accepted,
    /// See [`ErrorKind::Terminal`].
    Terminal,
    /// See [`ErrorKind::Unsupported`].
    Unsupported,
    /// See [`ErrorKind::RetriesExhausted`].
    RetriesExhausted,
    /// See [`ErrorKind::BudgetExhausted`].
    BudgetExhausted,
    /// See [`ErrorKind::CircuitOpen`].
    CircuitOpen,
    /// See [`ErrorKind::Throttled`].
    Throttled,
    /// See [`ErrorKind::RateLimited`].
    RateLimited,
    /// See [`ErrorKind::Overloaded`].
    Overloaded,
    /// See [`ErrorKind::DeadlineExceeded`].
    DeadlineExceeded,
    /// See [`ErrorKind::PollTimeout`].
    PollTimeout,
    /// See [`ErrorKind::PollRefused`].
    PollRefused,
    /// See [`ErrorKind::Transport`].
    Transport,
    /// See [`ErrorKind::Timeout`].
    Timeout,
}

impl Outcome {
    /// The outcome of a response the stack returned as `Ok`, by its class:
    /// pollable means the operation was accepted, anything else succeeded.
    pub fn of_response(class: StatusClass) -> Outcome {
        match class {
            StatusClass::Pollable => Outcome::Accepted,
            _ => Outcome::Success,
        }
    }

    /// The outcome name, such as `"success"` or `"retries_exhausted"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Accepted => "accepted",
            Outcome::Terminal => ErrorKind::Terminal.as_str(),
            Outcome::Unsupported => ErrorKind::Unsupported.as_str(),
            Outcome::RetriesExhausted => ErrorKind::RetriesExhausted.as_str(),
            Outcome::BudgetExhausted => ErrorKind::BudgetExhausted.as_str(),
            Outcome::CircuitOpen => ErrorKind::CircuitOpen.as_str(),
            Outcome::Throttled => ErrorKind::Throttled.as_str(),
            Outcome::RateLimited => ErrorKind::RateLimited.as_str(),
            Outcome::Overloaded => ErrorKind::Overloaded.as_str(),
            Outcome::DeadlineExceeded => ErrorKind::DeadlineExceeded.as_str(),
            Outcome::PollTimeout => ErrorKind::PollTimeout.as_str(),
            Outcome::PollRefused => ErrorKind::PollRefused.as_str(),
            Outcome::Transport => ErrorKind::Transport.as_str(),
            Outcome::Timeout => ErrorKind::Timeout.as_str(),
        }
    }

    /// Whether the call succeeded: `success` or `accepted`.
    pub const fn is_success(self) -> bool {
        matches!(self, Outcome::Success | Outcome::Accepted)
    }
}

impl From<ErrorKind> for Outcome {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Terminal => Outcome::Terminal,
            ErrorKind::Unsupported => Outcome::Unsupported,
            ErrorKind::RetriesExhausted => Outcome::RetriesExhausted,
            ErrorKind::BudgetExhausted => Outcome::BudgetExhausted,
            ErrorKind::CircuitOpen => Outcome::CircuitOpen,
            ErrorKind::Throttled => Outcome::Throttled,
            ErrorKind::RateLimited => Outcome::RateLimited,
            ErrorKind::Overloaded => Outcome::Overloaded,
            ErrorKind::DeadlineExceeded => Outcome::DeadlineExceeded,
            ErrorKind::PollTimeout => Outcome::PollTimeout,
            ErrorKind::PollRefused => Outcome::PollRefused,
            ErrorKind::Transport => Outcome::Transport,
            ErrorKind::Timeout => Outcome::Timeout,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_outcome_table() {
        let names: Vec<_> = [Outcome::Success, Outcome::Accepted]
            .into_iter()
            .chain(ErrorKind::ALL.iter().copied().map(Outcome::from))
            .map(Outcome::as_str)
            .collect();
        assert_eq!(
            names,
            [
                "success",
                "accepted",
                "terminal",
                "unsupported",
                "retries_exhausted",
                "budget_exhausted",
                "circuit_open",
                "throttled",
                "rate_limited",
                "overloaded",
                "deadline_exceeded",
                "poll_timeout",
                "poll_refused",
                "transport",
                "timeout"
            ]
        );
        for &kind in ErrorKind::ALL {
            assert_eq!(Outcome::from(kind).as_str(), kind.as_str());
            assert!(!Outcome::from(kind).is_success());
        }
    }

    #[test]
    fn responses_by_class() {
        assert_eq!(Outcome::of_response(StatusClass::Success), Outcome::Success);
        assert_eq!(
            Outcome::of_response(StatusClass::Pollable),
            Outcome::Accepted
        );
    }
}
