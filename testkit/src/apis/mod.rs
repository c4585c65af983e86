//! Stand-ins for public APIs, each answering as its documentation says: GitHub's
//! REST API, Stripe, Azure Resource Manager and Google Cloud, for the tests of
//! rebound's presets of the same names and for `rebound demo --api`.
//!
//! Each is a [`TestServer`] whose paths name what it does; the paths that
//! misbehave a fixed number of times count their requests per path, so each
//! caller can use a path of its own (the last segment is free) and calls
//! made at the same time do not interfere. Every wait a stand-in asks for is
//! a second or two, stated exactly (a `Retry-After`, a reset measured
//! against the answer's `Date`), so a test can assert it as a lower bound.

pub mod azure;
pub mod github;
pub mod google;
pub mod stripe;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Method, Response, header};

use crate::{Body, TestServer, respond};

/// A stand-in on `port` (0 for a free one) that answers each request with
/// `answer`, given the requests counted per path so far.
async fn serve(
    port: u16,
    answer: fn(&PerPath, &crate::TestRequest) -> Response<Body>,
) -> std::io::Result<TestServer> {
    let seen = PerPath::default();
    TestServer::start_on(port, move |request| {
        let response = answer(&seen, &request);
        async move { response }
    })
    .await
}

/// One of the stand-ins, named as its preset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// GitHub's REST API ([`github`]).
    Github,
    /// Stripe's API ([`stripe`]).
    Stripe,
    /// Azure Resource Manager ([`azure`]).
    Azure,
    /// Google Cloud's HTTP/JSON APIs ([`google`]).
    Google,
}

impl Api {
    /// Every stand-in.
    pub const ALL: [Api; 4] = [Api::Github, Api::Stripe, Api::Azure, Api::Google];

    /// The stand-in whose preset is `name`.
    pub fn from_name(name: &str) -> Option<Api> {
        Api::ALL.into_iter().find(|api| api.name() == name)
    }

    /// Its name, which is also its preset's.
    pub fn name(self) -> &'static str {
        match self {
            Api::Github => "github",
            Api::Stripe => "stripe",
            Api::Azure => "azure",
            Api::Google => "google",
        }
    }

    /// What it stands in for, in a sentence.
    pub fn title(self) -> &'static str {
        match self {
            Api::Github => "GitHub's REST API",
            Api::Stripe => "Stripe's API",
            Api::Azure => "Azure Resource Manager",
            Api::Google => "a Google Cloud API",
        }
    }

    /// Starts it on `port` of 127.0.0.1 (0 for a free one).
    pub async fn start_on(self, port: u16) -> std::io::Result<TestServer> {
        match self {
            Api::Github => github::start_on(port).await,
            Api::Stripe => stripe::start_on(port).await,
            Api::Azure => azure::start_on(port).await,
            Api::Google => google::start_on(port).await,
        }
    }

    /// Its scenarios, one request each, on paths of their own.
    pub fn scenarios(self) -> Vec<Scenario> {
        match self {
            Api::Github => github::scenarios(),
            Api::Stripe => stripe::scenarios(),
            Api::Azure => azure::scenarios(),
            Api::Google => google::scenarios(),
        }
    }
}

/// One request to a stand-in, and what the stand-in does with it.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// What the server does, in a few words.
    pub what: &'static str,
    /// The request's method.
    pub method: Method,
    /// Its path (and query), on the stand-in.
    pub path: String,
    /// Its headers besides `Content-Type`.
    pub headers: Vec<(&'static str, &'static str)>,
    /// Its body, JSON when not empty.
    pub body: &'static str,
}

impl Scenario {
    fn new(what: &'static str, method: Method, path: &str) -> Scenario {
        Scenario {
            what,
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: "",
        }
    }

    fn get(what: &'static str, path: &str) -> Scenario {
        Scenario::new(what, Method::GET, path)
    }

    fn with_body(mut self, body: &'static str) -> Scenario {
        self.body = body;
        self
    }

    fn with_header(mut self, name: &'static str, value: &'static str) -> Scenario {
        self.headers.push((name, value));
        self
    }
}

/// How many requests each path has received.
#[derive(Debug, Clone, Default)]
struct PerPath(Arc<Mutex<HashMap<String, u32>>>);

impl PerPath {
    /// Counts a request to `path` and returns its number, from 1.
    fn count(&self, path: &str) -> u32 {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = seen.entry(path.to_owned()).or_insert(0);
        *count += 1;
        *count
    }
}

/// A JSON answer.
fn json(status: u16, body: impl Into<Body>) -> Response<Body> {
    let mut response = respond(status, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// `response` with these headers added.
fn with(mut response: Response<Body>, headers: &[(&'static str, String)]) -> Response<Body> {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().append(*name, value);
        }
    }
    response
}

/// A request's path, split into its segments.
fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}
