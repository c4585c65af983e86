//! What the stack tells the caller about a successful call.

use http::Response;

/// The status URL whose answer ended a polled call: inserted into the
/// extensions of a response that polls led to, beside its [`CallInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalUrl(pub http::Uri);

impl FinalUrl {
    /// The URL recorded on `response`, when polls led to it.
    pub fn of<B>(response: &Response<B>) -> Option<&http::Uri> {
        response.extensions().get::<FinalUrl>().map(|url| &url.0)
    }
}

/// How many attempts, polls and requests a successful call took.
///
/// Layers that repeat requests (retry, poll) insert it into the extensions of
/// the response they return, and only when they did repeat one: a response
/// without it was got with one attempt and no poll, and the success path pays
/// no allocation for saying so. Failed calls carry the same counts on
/// [`Error::attempts`](crate::Error::attempts),
/// [`Error::polls`](crate::Error::polls) and
/// [`Error::requests`](crate::Error::requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallInfo {
    attempts: u32,
    polls: u32,
    requests: u32,
}

impl Default for CallInfo {
    fn default() -> Self {
        CallInfo {
            attempts: 1,
            polls: 0,
            requests: 1,
        }
    }
}

impl CallInfo {
    /// `attempts` of the request and `polls` of its operation, one request
    /// each.
    pub(crate) fn new(attempts: u32, polls: u32) -> Self {
        CallInfo {
            attempts,
            polls,
            requests: attempts.saturating_add(polls),
        }
    }

    /// The same counts, with `requests` sent in all (status requests retried
    /// after a failure send more than one request per poll).
    pub(crate) fn with_requests(self, requests: u32) -> Self {
        CallInfo { requests, ..self }
    }

    /// The counts recorded on `response`, or one attempt and no poll.
    pub fn of<B>(response: &Response<B>) -> CallInfo {
        response
            .extensions()
            .get::<CallInfo>()
            .copied()
            .unwrap_or_default()
    }

    /// Attempts sent for the request (1 when it was not retried).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Times a `202 Accepted` operation was polled (a status request retried
    /// after a failure counts once here, and each time in
    /// [`requests`](Self::requests)).
    pub fn polls(&self) -> u32 {
        self.polls
    }

    /// Requests sent in all: the attempts, and every status request with its
    /// retries. What the server counted.
    pub fn requests(&self) -> u32 {
        self.requests
    }
}
