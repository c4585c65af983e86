//! The end of a call: one type and one calculation for every layer.
//!
//! A call must end by `timeouts.total` after it started, waits and retries and
//! polls included. Each layer that waits or sends again works out the same
//! instant here, and hands it to the requests it sends after the first in a
//! [`CallDeadline`], so that no attempt and no poll outlives the call.
//! [`Timeouts`] is what a policy says about both.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::settings::{self, SettingsError};
use crate::units::DurationStr;

/// When the logical call must end, carried by the requests a layer sends
/// after the first one (retries, status requests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallDeadline(pub(crate) Instant);

impl CallDeadline {
    /// The deadline a request carries, if any.
    pub(crate) fn of<B>(request: &http::Request<B>) -> Option<Instant> {
        request.extensions().get::<CallDeadline>().map(|d| d.0)
    }
}

/// The end of a call that started at `started` and may last `total`, or the
/// end of the call that encloses it (`outer`), whichever comes first.
pub(crate) fn call_deadline(started: Instant, total: Duration, outer: Option<Instant>) -> Instant {
    let own = started
        .checked_add(total)
        .unwrap_or(started + Duration::from_secs(86_400 * 365));
    outer.map_or(own, |outer| own.min(outer))
}

/// How long one attempt, and one whole call, may take: a policy's
/// `[timeouts]`.
///
/// `attempt` bounds each attempt, from sending the request to reading the
/// response head (and, for an error, its body). `total` bounds the whole call:
/// every attempt, every wait between them, and every status request of a
/// `202 Accepted` operation. Each is between 1 ms and 1 hour.
///
/// ```
/// use std::time::Duration;
/// use tower_rebound::Timeouts;
///
/// let timeouts = Timeouts::new(Duration::from_secs(2), Duration::from_secs(30))?;
/// assert_eq!(timeouts.total(), Duration::from_secs(30));
/// assert!(Timeouts::new(Duration::ZERO, Duration::from_secs(30)).is_err());
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawTimeouts")]
pub struct Timeouts {
    attempt: Duration,
    total: Duration,
    propagate: Option<Propagate>,
}

impl Timeouts {
    /// The default `timeouts.attempt`: 10 s.
    pub const DEFAULT_ATTEMPT: Duration = Duration::from_secs(10);
    /// The default `timeouts.total`: 60 s.
    pub const DEFAULT_TOTAL: Duration = Duration::from_secs(60);

    /// Timeouts of `attempt` per attempt and `total` per call.
    pub fn new(attempt: Duration, total: Duration) -> Result<Timeouts, SettingsError> {
        let bounds = Duration::from_millis(1)..=Duration::from_secs(3600);
        Ok(Timeouts {
            attempt: settings::duration("timeouts.attempt", attempt, bounds.clone())?,
            total: settings::duration("timeouts.total", total, bounds)?,
            propagate: None,
        })
    }

    /// The same timeouts, with the time each request has left sent in a
    /// header (`timeouts.propagate`), so that the server can stop work no
    /// one waits for.
    pub fn with_propagate(mut self, propagate: Propagate) -> Timeouts {
        self.propagate = Some(propagate);
        self
    }

    /// The same timeouts with the call's total `total`, its propagation
    /// kept.
    pub fn with_total(self, total: Duration) -> Result<Timeouts, SettingsError> {
        let timeouts = Timeouts::new(self.attempt, total)?;
        Ok(Timeouts {
            propagate: self.propagate,
            ..timeouts
        })
    }

    /// The most one attempt may take.
    pub fn attempt(&self) -> Duration {
        self.attempt
    }

    /// The most the whole call may take, waits and polls included.
    pub fn total(&self) -> Duration {
        self.total
    }

    /// How the time left is sent downstream, if it is.
    pub fn propagate(&self) -> Option<&Propagate> {
        self.propagate.as_ref()
    }

    /// Writes the time `request` has left into the header of
    /// `timeouts.propagate`: until its attempt's timeout or the call's end
    /// (`end`), whichever comes first. Nothing without the key, or on a
    /// status request to another origin.
    #[inline]
    pub(crate) fn stamp<B>(
        &self,
        request: &mut http::Request<B>,
        end: impl FnOnce(Instant) -> Option<Instant>,
    ) {
        let Some(propagate) = &self.propagate else {
            return;
        };
        if request.extensions().get::<OtherOrigin>().is_some() {
            return;
        }
        let now = Instant::now();
        let left = end(now).map_or(self.attempt, |end| {
            end.saturating_duration_since(now).min(self.attempt)
        });
        propagate.stamp(request.headers_mut(), left);
    }
}

/// Marks a status request to another origin: the time left is not sent
/// there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OtherOrigin;

/// A header that carries the time a request has left (`timeouts.propagate`
/// and `timeouts.propagate_format`): milliseconds, such as
/// `X-Request-Timeout: 2500`, or gRPC's form, such as `grpc-timeout: 2500m`.
///
/// ```
/// use tower_rebound::{Propagate, PropagateFormat};
///
/// let header = Propagate::new("X-Request-Timeout", PropagateFormat::Milliseconds)?;
/// assert_eq!(header.name().as_str(), "x-request-timeout");
/// assert!(Propagate::new("bad header", PropagateFormat::Grpc).is_err());
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Propagate {
    /// The header's name, lower case, kept inline so that [`Timeouts`]
    /// stays `Copy`.
    name: [u8; MAX_PROPAGATE_NAME],
    len: u8,
    format: PropagateFormat,
}

/// The longest header name `timeouts.propagate` takes.
const MAX_PROPAGATE_NAME: usize = 48;

/// How [`Propagate`] writes the time left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub enum PropagateFormat {
    /// Whole milliseconds (`"ms"`): `2500`.
    #[serde(rename = "ms")]
    Milliseconds,
    /// gRPC's `grpc-timeout` text (`"grpc"`): `2500m`, or `750u` under a
    /// millisecond.
    #[serde(rename = "grpc")]
    Grpc,
}

impl Propagate {
    /// The header `name` in `format`: at most 48 characters, a valid header
    /// name.
    pub fn new(name: &str, format: PropagateFormat) -> Result<Propagate, SettingsError> {
        let key = "timeouts.propagate";
        let parsed = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            SettingsError::new(key, format!("invalid header name {name:?} in {key}"))
        })?;
        let bytes = parsed.as_str().as_bytes();
        if bytes.len() > MAX_PROPAGATE_NAME {
            return Err(SettingsError::new(
                key,
                format!("{key} is too long: expected at most {MAX_PROPAGATE_NAME} characters"),
            ));
        }
        let mut inline = [0; MAX_PROPAGATE_NAME];
        inline[..bytes.len()].copy_from_slice(bytes);
        Ok(Propagate {
            name: inline,
            len: bytes.len() as u8,
            format,
        })
    }

    /// The header's name.
    pub fn name(&self) -> http::HeaderName {
        http::HeaderName::from_bytes(&self.name[..usize::from(self.len)])
            .expect("checked when made")
    }

    /// How the time left is written.
    pub fn format(&self) -> PropagateFormat {
        self.format
    }

    /// The header's value for `left`.
    pub fn value(&self, left: Duration) -> http::HeaderValue {
        let text = match self.format {
            PropagateFormat::Milliseconds => left.as_millis().to_string(),
            // At most 8 digits: a millisecond count fits for 27 hours,
            // past any `timeouts.attempt`.
            PropagateFormat::Grpc if left >= Duration::from_millis(1) => {
                format!("{}m", left.as_millis().min(99_999_999))
            }
            PropagateFormat::Grpc => format!("{}u", left.as_micros().max(1)),
        };
        http::HeaderValue::from_str(&text).expect("digits and a unit")
    }

    fn stamp(&self, headers: &mut http::HeaderMap, left: Duration) {
        headers.insert(self.name(), self.value(left));
    }
}

impl std::fmt::Debug for Propagate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Propagate")
            .field("name", &self.name())
            .field("format", &self.format)
            .finish()
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            attempt: Timeouts::DEFAULT_ATTEMPT,
            total: Timeouts::DEFAULT_TOTAL,
            propagate: None,
        }
    }
}

/// `[timeouts]` as a file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub(crate) attempt: Option<DurationStr>,
    pub(crate) total: Option<DurationStr>,
    pub(crate) propagate: Option<String>,
    pub(crate) propagate_format: Option<PropagateFormat>,
}

impl TryFrom<RawTimeouts> for Timeouts {
    type Error = SettingsError;

    fn try_from(raw: RawTimeouts) -> Result<Self, SettingsError> {
        let timeouts = Timeouts::new(
            raw.attempt.map_or(Timeouts::DEFAULT_ATTEMPT, |d| d.0),
            raw.total.map_or(Timeouts::DEFAULT_TOTAL, |d| d.0),
        )?;
        match (raw.propagate, raw.propagate_format) {
            (Some(name), format) => {
                // gRPC's own header is written its way unless told.
                let format = format.unwrap_or(if name.eq_ignore_ascii_case("grpc-timeout") {
                    PropagateFormat::Grpc
                } else {
                    PropagateFormat::Milliseconds
                });
                Ok(timeouts.with_propagate(Propagate::new(&name, format)?))
            }
            (None, Some(_)) => Err(SettingsError::new(
                "timeouts.propagate_format",
                "timeouts.propagate_format needs timeouts.propagate: the header to write the time left in",
            )),
            (None, None) => Ok(timeouts),
        }
    }
}
