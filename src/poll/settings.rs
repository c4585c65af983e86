//! What the poll layer is told: a policy's `[poll]`.

use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use super::{Completion, FinalResult, OnAccepted, Origin};
use crate::settings::{self, SettingsError};
use crate::units::DurationStr;

/// Where a `202 Accepted` operation says to look, how often to look, for how
/// long, and what may go with the status requests.
///
/// Built with [`PollSettings::builder`], from a policy file's `[poll]`, or
/// with serde from such a table. The defaults are those of
/// `policies/README.md`: the status URL from `Operation-Location`, else
/// `Location`; polls 1 s apart growing by 1.5x to 10 s; at most 30 polls or
/// 60 s; the request's own origin only, and a 202 without a status URL
/// returned as it is.
///
/// ```
/// use std::time::Duration;
/// use tower_rebound::poll::{Origin, PollSettings};
///
/// let settings = PollSettings::builder()
///     .interval(Duration::from_millis(500))
///     .allowed_origins(vec![Origin::parse("https://ops.example").unwrap()])
///     .build()?;
/// assert_eq!(settings.interval(), Duration::from_millis(500));
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawPoll")]
pub struct PollSettings {
    pub(crate) on_accepted: OnAccepted,
    pub(crate) location_headers: Vec<HeaderName>,
    pub(crate) interval: Duration,
    pub(crate) multiplier: f64,
    pub(crate) max_interval: Duration,
    pub(crate) max_polls: u32,
    pub(crate) max_duration: Duration,
    pub(crate) allowed_origins: Vec<Origin>,
    pub(crate) forward_credentials: bool,
    pub(crate) secret_headers: Vec<HeaderName>,
    /// Where a `200` status body says how the operation is going; `None`:
    /// the status code alone says, and no body is read.
    pub(crate) completion: Option<Completion>,
    pub(crate) max_body_bytes: usize,
    /// Where a finished operation's result is.
    pub(crate) result: FinalResult,
    /// Headers that make a `201 Created` an operation to poll.
    pub(crate) created_headers: Vec<HeaderName>,
    /// The headers whose status URLs say in a `200`'s body how the
    /// operation goes (`poll.body_headers`); `None`: every header's.
    pub(crate) body_headers: Option<Vec<HeaderName>>,
    /// Whether any answer can name a status URL: a header to read one
    /// from, or a body rule that names one. A call that can never be
    /// polled keeps nothing for it.
    pub(crate) follows: bool,
}

impl PollSettings {
    /// A builder with the defaults.
    pub fn builder() -> PollBuilder {
        PollBuilder::default()
    }

    /// What a 202 with no status URL becomes.
    pub fn on_accepted(&self) -> OnAccepted {
        self.on_accepted
    }

    /// The headers that may name the status URL, in order of preference.
    pub fn location_headers(&self) -> &[HeaderName] {
        &self.location_headers
    }

    /// The wait before the first poll when the server does not say.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How much each wait grows.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The longest wait between polls, `Retry-After` included.
    pub fn max_interval(&self) -> Duration {
        self.max_interval
    }

    /// The most status requests for one operation.
    pub fn max_polls(&self) -> u32 {
        self.max_polls
    }

    /// The longest an operation is followed.
    pub fn max_duration(&self) -> Duration {
        self.max_duration
    }

    /// Other origins a status URL may point at.
    pub fn allowed_origins(&self) -> &[Origin] {
        &self.allowed_origins
    }

    /// Whether credentials go to allowed other origins.
    pub fn forward_credentials(&self) -> bool {
        self.forward_credentials
    }

    /// Headers that carry secrets, besides `Authorization`, `Cookie` and
    /// `Proxy-Authorization`: never sent to another origin.
    pub fn secret_headers(&self) -> &[HeaderName] {
        &self.secret_headers
    }

    /// Where a `200` status body says how the operation is going, if it
    /// does.
    pub fn completion(&self) -> Option<&Completion> {
        self.completion.as_ref()
    }

    /// The most of a status body read to learn how the operation is going.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Where a finished operation's result is.
    pub fn result(&self) -> FinalResult {
        self.result
    }

    /// The headers that make a `201 Created` an operation to poll, at the
    /// URL the first of them names.
    pub fn created_headers(&self) -> &[HeaderName] {
        &self.created_headers
    }

    /// The headers whose status URLs are read by the completion rule
    /// (`poll.body_headers`); `None` when every header's is.
    pub fn body_headers(&self) -> Option<&[HeaderName]> {
        self.body_headers.as_deref()
    }

    /// Whether the completion rule reads the `200`s of a status URL that
    /// header `name` gave.
    pub(crate) fn reads_body_of(&self, name: &HeaderName) -> bool {
        self.body_headers
            .as_ref()
            .is_none_or(|names| names.contains(name))
    }

    /// The wait before poll number `poll` (1 for the first) when the server
    /// did not say.
    pub(crate) fn interval_before(&self, poll: u32) -> Duration {
        let exponent = poll.saturating_sub(1).min(1_000) as i32;
        let seconds = self.interval.as_secs_f64() * self.multiplier.powi(exponent);
        if seconds >= self.max_interval.as_secs_f64() {
            self.max_interval
        } else {
            Duration::try_from_secs_f64(seconds).unwrap_or(self.max_interval)
        }
    }
}

impl Default for PollSettings {
    fn default() -> Self {
        PollSettings::builder()
            .build()
            .expect("the defaults are within bounds")
    }
}

/// Builds [`PollSettings`]; see there.
#[derive(Debug, Clone, Default)]
pub struct PollBuilder {
    on_accepted: Option<OnAccepted>,
    location_headers: Option<Vec<HeaderName>>,
    interval: Option<Duration>,
    multiplier: Option<f64>,
    max_interval: Option<Duration>,
    max_polls: Option<u32>,
    max_duration: Option<Duration>,
    allowed_origins: Vec<Origin>,
    forward_credentials: bool,
    secret_headers: Vec<HeaderName>,
    completion: Option<Completion>,
    max_body_bytes: Option<usize>,
    result: Option<FinalResult>,
    created_headers: Vec<HeaderName>,
    body_headers: Option<Vec<HeaderName>>,
}

/// The most headers a list may name.
const MAX_HEADERS: usize = 16;

impl PollBuilder {
    /// What a 202 with no status URL becomes (`on_accepted`, default
    /// [`OnAccepted::Succeed`]).
    pub fn on_accepted(mut self, on_accepted: OnAccepted) -> Self {
        self.on_accepted = Some(on_accepted);
        self
    }

    /// The headers that may name the status URL, in order (`location_headers`,
    /// at most 16, default `Operation-Location` then `Location`).
    pub fn location_headers(mut self, names: Vec<HeaderName>) -> Self {
        self.location_headers = Some(names);
        self
    }

    /// The first wait (`interval`, 1 ms to 1 h, default 1 s).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// How much each wait grows (`multiplier`, 1 to 10, default 1.5).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = Some(multiplier);
        self
    }

    /// The longest wait (`max_interval`, `interval` to 1 h, default 10 s or
    /// `interval` if longer).
    pub fn max_interval(mut self, max_interval: Duration) -> Self {
        self.max_interval = Some(max_interval);
        self
    }

    /// The most status requests (`max_polls`, 1 to 1000, default 30).
    pub fn max_polls(mut self, max_polls: u32) -> Self {
        self.max_polls = Some(max_polls);
        self
    }

    /// The longest an operation is followed (`max_duration`, 1 ms to 24 h,
    /// default 60 s).
    pub fn max_duration(mut self, max_duration: Duration) -> Self {
        self.max_duration = Some(max_duration);
        self
    }

    /// Other origins a status URL may point at (`allowed_origins`).
    pub fn allowed_origins(mut self, origins: Vec<Origin>) -> Self {
        self.allowed_origins = origins;
        self
    }

    /// Whether credentials go to allowed other origins
    /// (`forward_credentials`, default false).
    pub fn forward_credentials(mut self, forward: bool) -> Self {
        self.forward_credentials = forward;
        self
    }

    /// More headers that never go to another origin (`secret_headers`, at
    /// most 16).
    pub fn secret_headers(mut self, names: Vec<HeaderName>) -> Self {
        self.secret_headers = names;
        self
    }

    /// Where a `200` status body says how the operation is going
    /// (`status_pointer` and its lists, or `done_pointer`; none by default:
    /// the status code alone says).
    pub fn completion(mut self, completion: Completion) -> Self {
        self.completion = Some(completion);
        self
    }

    /// The most of a status body read (`max_body_bytes`, 1 B to 16 MiB,
    /// default 64 KiB); read only with a completion rule.
    pub fn max_body_bytes(mut self, max_bytes: usize) -> Self {
        self.max_body_bytes = Some(max_bytes);
        self
    }

    /// Where a finished operation's result is (`result`, default
    /// [`FinalResult::Status`]: the last status answer).
    pub fn result(mut self, result: FinalResult) -> Self {
        self.result = Some(result);
        self
    }

    /// The headers that make a `201 Created` an operation to poll
    /// (`created_headers`, at most 16, none by default: a 201 is a
    /// success), such as Azure's `Azure-AsyncOperation`.
    pub fn created_headers(mut self, names: Vec<HeaderName>) -> Self {
        self.created_headers = names;
        self
    }

    /// The headers whose status URLs the completion rule reads
    /// (`body_headers`, at most 16; by default every header's): a status
    /// URL another header gave is judged by its status code alone, and its
    /// final answer is the operation's result. Azure's
    /// `["Azure-AsyncOperation"]`: its `Location` answers `202` while the
    /// operation runs, then as the request itself would have.
    pub fn body_headers(mut self, names: Vec<HeaderName>) -> Self {
        self.body_headers = Some(names);
        self
    }

    /// The settings, or the first value out of bounds.
    pub fn build(self) -> Result<PollSettings, SettingsError> {
        let hour = Duration::from_secs(3600);
        let location_headers = self.location_headers.unwrap_or_else(|| {
            vec![
                HeaderName::from_static("operation-location"),
                http::header::LOCATION,
            ]
        });
        let body_headers = self.body_headers.as_deref().unwrap_or_default();
        for (key, list) in [
            ("poll.location_headers", location_headers.as_slice()),
            ("poll.secret_headers", &self.secret_headers),
            ("poll.created_headers", &self.created_headers),
            ("poll.body_headers", body_headers),
        ] {
            if list.len() > MAX_HEADERS {
                return Err(SettingsError::new(
                    key,
                    format!("{key} lists too many headers: expected at most {MAX_HEADERS}"),
                )
                .at_index(MAX_HEADERS));
            }
        }
        let interval = settings::duration(
            "poll.interval",
            self.interval.unwrap_or(Duration::from_secs(1)),
            Duration::from_millis(1)..=hour,
        )?;
        let max_interval = settings::duration(
            "poll.max_interval",
            self.max_interval
                .unwrap_or(Duration::from_secs(10).max(interval)),
            interval..=hour,
        )?;
        if self.body_headers.is_some() && self.completion.is_none() {
            return Err(SettingsError::new(
                "poll.body_headers",
                "poll.body_headers needs poll.status_pointer or poll.done_pointer: it says which status URLs they read",
            ));
        }
        let follows = !location_headers.is_empty()
            || !self.created_headers.is_empty()
            || self
                .completion
                .as_ref()
                .is_some_and(Completion::names_status_url);
        Ok(PollSettings {
            on_accepted: self.on_accepted.unwrap_or(OnAccepted::Succeed),
            location_headers,
            interval,
            multiplier: settings::number(
                "poll.multiplier",
                self.multiplier.unwrap_or(1.5),
                1.0..=10.0,
            )?,
            max_interval,
            max_polls: settings::count("poll.max_polls", self.max_polls.unwrap_or(30), 1..=1000)?,
            max_duration: settings::duration(
                "poll.max_duration",
                self.max_duration.unwrap_or(Duration::from_secs(60)),
                Duration::from_millis(1)..=Duration::from_secs(24 * 3600),
            )?,
            allowed_origins: self.allowed_origins,
            forward_credentials: self.forward_credentials,
            secret_headers: self.secret_headers,
            completion: self.completion,
            max_body_bytes: settings::count(
                "poll.max_body_bytes",
                u32::try_from(self.max_body_bytes.unwrap_or(64 * 1024)).unwrap_or(u32::MAX),
                1..=16 * 1024 * 1024,
            )? as usize,
            result: self.result.unwrap_or(FinalResult::Status),
            follows,
            created_headers: self.created_headers,
            body_headers: self.body_headers,
        })
    }
}

/// `[poll]` as a file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoll {
    on_accepted: Option<OnAccepted>,
    location_headers: Option<Vec<String>>,
    interval: Option<DurationStr>,
    multiplier: Option<f64>,
    max_interval: Option<DurationStr>,
    max_polls: Option<i64>,
    max_duration: Option<DurationStr>,
    allowed_origins: Option<Vec<String>>,
    forward_credentials: Option<bool>,
    secret_headers: Option<Vec<String>>,
    status_pointer: Option<String>,
    running: Option<Vec<String>>,
    succeeded: Option<Vec<String>>,
    failed: Option<Vec<String>>,
    canceled: Option<Vec<String>>,
    done_pointer: Option<String>,
    error_pointer: Option<String>,
    status_url: Option<String>,
    name_pointer: Option<String>,
    result_pointer: Option<String>,
    max_body_bytes: Option<i64>,
    result: Option<FinalResult>,
    created_headers: Option<Vec<String>>,
    body_headers: Option<Vec<String>>,
}

impl RawPoll {
    /// The completion rule the keys describe: `status_pointer` with its
    /// lists, or `done_pointer`, each with `error_pointer` (`/error` by
    /// default).
    fn completion(&self) -> Result<Option<Completion>, SettingsError> {
        let completion = match (self.body_rule()?, &self.result_pointer) {
            (Some(completion), Some(pointer)) => Some(completion.with_result_pointer(pointer)?),
            (None, Some(_)) => {
                return Err(SettingsError::new(
                    "poll.result_pointer",
                    "poll.result_pointer needs poll.status_pointer or poll.done_pointer: the result is read from a finished operation's status body",
                ));
            }
            (completion, None) => completion,
        };
        match (completion, &self.status_url) {
            (Some(completion), Some(template)) => {
                let name = self.name_pointer.as_deref().unwrap_or("/name");
                completion.with_status_url(template, name).map(Some)
            }
            (None, Some(_)) => Err(SettingsError::new(
                "poll.status_url",
                "poll.status_url needs poll.status_pointer or poll.done_pointer: they say when the operation it names ends",
            )),
            (completion, None) => {
                if self.name_pointer.is_some() {
                    return Err(SettingsError::new(
                        "poll.name_pointer",
                        "poll.name_pointer needs poll.status_url",
                    ));
                }
                Ok(completion)
            }
        }
    }

    fn body_rule(&self) -> Result<Option<Completion>, SettingsError> {
        let error_pointer = self.error_pointer.as_deref().unwrap_or("/error");
        let lists = [
            ("poll.running", &self.running),
            ("poll.succeeded", &self.succeeded),
            ("poll.failed", &self.failed),
            ("poll.canceled", &self.canceled),
        ];
        match (&self.status_pointer, &self.done_pointer) {
            (Some(_), Some(_)) => Err(SettingsError::new(
                "poll.done_pointer",
                "poll.status_pointer and poll.done_pointer both say how an operation ends: expected one of them",
            )),
            (Some(pointer), None) => {
                let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
                Completion::status(
                    pointer,
                    list(&self.running),
                    list(&self.succeeded),
                    list(&self.failed),
                    list(&self.canceled),
                    error_pointer,
                )
                .map(Some)
            }
            (None, Some(pointer)) => {
                if let Some((key, _)) = lists.iter().find(|(_, l)| l.is_some()) {
                    return Err(SettingsError::new(
                        *key,
                        format!(
                            "{key} needs poll.status_pointer: poll.done_pointer reads a boolean"
                        ),
                    ));
                }
                Completion::done(pointer, error_pointer).map(Some)
            }
            (None, None) => {
                let stray = lists
                    .iter()
                    .find(|(_, l)| l.is_some())
                    .map(|(key, _)| *key)
                    .or(self.error_pointer.as_ref().map(|_| "poll.error_pointer"));
                match stray {
                    Some(key) => Err(SettingsError::new(
                        key,
                        format!("{key} needs poll.status_pointer or poll.done_pointer"),
                    )),
                    None => Ok(None),
                }
            }
        }
    }
}

/// Header names as a file writes them, each checked.
fn header_names(key: &'static str, names: &[String]) -> Result<Vec<HeaderName>, SettingsError> {
    if names.len() > MAX_HEADERS {
        return Err(SettingsError::new(
            key,
            format!("{key} lists too many headers: expected at most {MAX_HEADERS}"),
        )
        .at_index(MAX_HEADERS));
    }
    names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                SettingsError::new(key, format!("invalid header name {name:?} in {key}"))
                    .at_index(index)
            })
        })
        .collect()
}

impl TryFrom<RawPoll> for PollSettings {
    type Error = SettingsError;

    fn try_from(raw: RawPoll) -> Result<Self, SettingsError> {
        let key = "poll.allowed_origins";
        let origins = raw
            .allowed_origins
            .iter()
            .flatten()
            .enumerate()
            .map(|(index, text)| {
                Origin::parse(text).ok_or_else(|| {
                    SettingsError::new(
                        key,
                        format!(
                            "invalid origin {text:?} in {key}: expected scheme://host[:port], such as \"https://ops.example\""
                        ),
                    )
                    .at_index(index)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let completion = raw.completion()?;
        let builder = PollBuilder {
            completion,
            result: raw.result,
            created_headers: match &raw.created_headers {
                Some(names) => header_names("poll.created_headers", names)?,
                None => Vec::new(),
            },
            body_headers: match &raw.body_headers {
                Some(names) => Some(header_names("poll.body_headers", names)?),
                None => None,
            },
            max_body_bytes: raw
                .max_body_bytes
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            on_accepted: raw.on_accepted,
            location_headers: match &raw.location_headers {
                Some(names) => Some(header_names("poll.location_headers", names)?),
                None => None,
            },
            interval: raw.interval.map(|d| d.0),
            multiplier: raw.multiplier,
            max_interval: raw.max_interval.map(|d| d.0),
            max_polls: raw.max_polls.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            max_duration: raw.max_duration.map(|d| d.0),
            allowed_origins: origins,
            forward_credentials: raw.forward_credentials.unwrap_or(false),
            secret_headers: match &raw.secret_headers {
                Some(names) => header_names("poll.secret_headers", names)?,
                None => Vec::new(),
            },
        };
        builder.build()
    }
}
