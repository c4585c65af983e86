//! The rate-limit headers that say when a quota comes back: the IETF
//! draft's `RateLimit` structured field, and the reset headers that came
//! before it (`RateLimit-Reset`, GitHub's `X-RateLimit-Reset`).
//!
//! Both parsers take what a server sends and never fail: a value they cannot
//! read is no wait, so a garbage header leaves the retry on its backoff.

use std::time::{Duration, SystemTime};

/// A reset above this many seconds is an epoch time, not a delay: 10^9
/// seconds is 31 years, which no server means as a wait, and every epoch
/// since September 2001 is past it.
const EPOCH_ABOVE: u64 = 1_000_000_000;

/// The most digits of a structured-field integer (RFC 9651 section 3.3.1).
const MAX_SF_DIGITS: usize = 15;

/// The most digits of the whole part of a reset: more than `u64` holds is
/// garbage, not a wait.
const MAX_RESET_DIGITS: usize = 19;

/// The wait a `RateLimit` header asks for (draft-ietf-httpapi-ratelimit-headers):
/// a list of quota policies, each an item with the parameters `r` (the
/// quota units remaining) and `t` (seconds until the quota resets), as in
/// `"default";r=0;t=3`.
///
/// A quota whose `r` is 0 is spent, and a request can pass only once every
/// spent quota has reset: the wait is the largest `t` of the items whose `r`
/// is 0. An item without `r` counts as spent (the server did not say
/// otherwise, and it sent the header with a failure). An item with units
/// left asks for no wait: the quota is not why the request failed, and its
/// reset may be an hour away. `None` when no item asks for a wait, or the
/// field is not a valid list (a field that breaks the syntax is ignored
/// whole, as RFC 9651 says).
///
/// ```
/// use std::time::Duration;
/// use tower_rebound::classify::parse_ratelimit;
///
/// assert_eq!(parse_ratelimit(r#""default";r=0;t=3"#), Some(Duration::from_secs(3)));
/// // Two quotas spent: both must reset.
/// assert_eq!(
///     parse_ratelimit(r#""burst";r=0;t=1, "daily";r=0;t=40, "hourly";r=5;t=900"#),
///     Some(Duration::from_secs(40)),
/// );
/// // Units left: the quota is not what failed.
/// assert_eq!(parse_ratelimit(r#""default";r=50;t=30"#), None);
/// assert_eq!(parse_ratelimit("garbage;;t=-1"), None);
/// ```
pub fn parse_ratelimit(value: &str) -> Option<Duration> {
    ratelimit_wait(value, false)
}

/// The wait of the quotas a `RateLimit` field says are spent: with
/// `explicit`, only those that say `r=0` (a success's field, where an item
/// that leaves `r` out says nothing of its quota).
pub(super) fn ratelimit_wait(value: &str, explicit: bool) -> Option<Duration> {
    let mut cursor = Cursor {
        bytes: value.as_bytes(),
        at: 0,
    };
    let mut wait: Option<u64> = None;
    cursor.skip_spaces();
    while !cursor.done() {
        cursor.skip_item()?;
        let (mut remaining, mut reset) = (None, None);
        while cursor.eat(b';') {
            cursor.skip(|b| b == b' ');
            let key = cursor.key()?;
            let value = if cursor.eat(b'=') {
                cursor.bare_value()?
            } else {
                // A parameter without a value is the boolean true.
                &b"?1"[..]
            };
            match key {
                b"r" => remaining = sf_integer(value),
                b"t" => reset = sf_integer(value),
                _ => {}
            }
        }
        // An `r` that is not an integer says nothing: as if absent.
        let spent = match remaining {
            Some(r) => r == 0,
            None => !explicit,
        };
        if let (true, Some(t)) = (spent, reset) {
            wait = Some(wait.map_or(t, |w| w.max(t)));
        }
        cursor.skip_spaces();
        if cursor.done() {
            break;
        }
        if !cursor.eat(b',') {
            return None;
        }
        cursor.skip_spaces();
        if cursor.done() {
            // A trailing comma breaks the list.
            return None;
        }
    }
    wait.map(Duration::from_secs)
}

/// A non-negative structured-field integer.
fn sf_integer(value: &[u8]) -> Option<u64> {
    let digits = !value.is_empty() && value.len() <= MAX_SF_DIGITS;
    if !digits || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// A reading position in a structured field.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.at += usize::from(hit);
        hit
    }

    fn skip(&mut self, mut while_: impl FnMut(u8) -> bool) -> &'a [u8] {
        let start = self.at;
        while self.peek().is_some_and(&mut while_) {
            self.at += 1;
        }
        &self.bytes[start..self.at]
    }

    fn skip_spaces(&mut self) {
        self.skip(|b| b == b' ' || b == b'\t');
    }

    /// Past a quoted string, its escapes included; `None` when it does not
    /// end.
    fn skip_string(&mut self) -> Option<()> {
        self.at += 1;
        loop {
            match self.peek()? {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                _ => self.at += 1,
            }
        }
    }

    /// Past a list member's item: a string, an inner list, or a token,
    /// number, byte sequence or boolean (none of which holds a delimiter).
    fn skip_item(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'(' => {
                self.at += 1;
                loop {
                    match self.peek()? {
                        b'"' => self.skip_string()?,
                        b')' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => self.at += 1,
                    }
                }
            }
            _ => {
                let item = self.skip(|b| !matches!(b, b';' | b',' | b' ' | b'\t' | b'"'));
                (!item.is_empty()).then_some(())
            }
        }
    }

    /// A parameter's key: a lower-case letter or `*`, then lower-case
    /// letters, digits, `_`, `-`, `.` and `*`.
    fn key(&mut self) -> Option<&'a [u8]> {
        if !self.peek()?.is_ascii_lowercase() && self.peek()? != b'*' {
            return None;
        }
        Some(self.skip(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*')
        }))
    }

    /// A parameter's value as written: a quoted string whole, else up to
    /// the next delimiter.
    fn bare_value(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        if self.peek()? == b'"' {
            self.skip_string()?;
            return Some(&self.bytes[start..self.at]);
        }
        let value = self.skip(|b| !matches!(b, b';' | b',' | b' ' | b'\t' | b'"'));
        (!value.is_empty()).then_some(value)
    }
}

/// The wait a reset header asks for: `RateLimit-Reset` (the draft's
/// earlier form) or `X-RateLimit-Reset` (GitHub and many others).
///
/// A number of seconds, with a fraction if need be (`3`, `1.5`); a number
/// past 10^9 is a time since the Unix epoch (GitHub's `1700000000`), and
/// the wait lasts until then, measured against `now` (the response's own
/// `Date` when it has one, so that a skewed client clock does not distort
/// the wait). An epoch in the past asks for no wait. Signs, exponents,
/// words, and numbers longer than a `u64` are no wait at all.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_rebound::classify::parse_reset;
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// assert_eq!(parse_reset("3", now), Some(Duration::from_secs(3)));
/// assert_eq!(parse_reset("0.25", now), Some(Duration::from_millis(250)));
/// assert_eq!(parse_reset("1700000042", now), Some(Duration::from_secs(42)));
/// assert_eq!(parse_reset("1699999000", now), Some(Duration::ZERO));
/// assert_eq!(parse_reset("-1", now), None);
/// ```
pub fn parse_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > MAX_RESET_DIGITS
        || !digits(whole)
        || (value.contains('.') && fraction.is_empty())
        || !digits(fraction)
    {
        return None;
    }
    let secs: u64 = whole.parse().ok()?;
    // Nanoseconds from the first nine digits of the fraction; finer ones
    // say nothing a timer can hold.
    let nanos = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    let reset = Duration::new(secs, nanos);
    if secs <= EPOCH_ABOVE {
        return Some(reset);
    }
    let at = SystemTime::UNIX_EPOCH.checked_add(reset)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Whether a `X-RateLimit-Remaining` (or `RateLimit-Remaining`) value says
/// units are left: a positive integer. Anything else, `0` included, leaves
/// the reset a wait.
pub(super) fn units_left(value: &str) -> bool {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && value.bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Option<Duration> = |s| Some(Duration::from_secs(s));

    #[test]
    fn ratelimit_fields() {
        // field, expected wait
        let rows: &[(&str, Option<Duration>)] = &[
            (r#""default";r=0;t=3"#, S(3)),
            (r#"default;r=0;t=3"#, S(3)),
            (r#""default";t=3;r=0"#, S(3)),
            (r#""default"; r=0; t=3"#, S(3)),
            (r#"  "default";r=0;t=3  "#, S(3)),
            (r#""default";t=3"#, S(3)),
            (r#""default";r=0;t=0"#, S(0)),
            (r#""default";r=1;t=3"#, None),
            (r#""default";r=0"#, None),
            (r#""default";q=100;w=60;r=0;t=59;pk=:Zm9vYmFy:"#, S(59)),
            (r#""a";r=0;t=1, "b";r=0;t=40, "c";r=5;t=900"#, S(40)),
            (r#""a";r=7;t=1, "b";r=3;t=40"#, None),
            (r#""a";r=7;t=1,"b";r=0;t=2"#, S(2)),
            (r#""a, b; t=9";r=0;t=4"#, S(4)),
            (r#""esc\"aped";r=0;t=5"#, S(5)),
            (r#"("x" "y");r=0;t=6"#, S(6)),
            (r#""default";r=0;t=999999999999999"#, S(999_999_999_999_999)),
            (r#""default";r=zero;t=3"#, S(3)),
            (r#""default";r;t=3"#, S(3)),
            (r#""default";r=0;t=?1"#, None),
            // Not waits: negative, fractions, too many digits, words.
            (r#""default";r=0;t=-3"#, None),
            (r#""default";r=0;t=1.5"#, None),
            (r#""default";r=0;t=1000000000000000"#, None),
            (r#""default";r=0;t="3""#, None),
            (r#""default";r=0;t=NaN"#, None),
            // Broken syntax: the whole field is ignored.
            ("", None),
            (" ", None),
            (",", None),
            (r#""default";r=0;t=3,"#, None),
            (r#""default";r=0;t=3 "b";r=0;t=9"#, None),
            (r#""unterminated;r=0;t=3"#, None),
            (r#""default";R=0;t=3"#, None),
            (r#""default";;t=3"#, None),
            (r#"("x" "y";r=0;t=6"#, None),
            (r#""default";t="#, None),
        ];
        for (field, expected) in rows {
            assert_eq!(parse_ratelimit(field), *expected, "{field}");
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn resets() {
        let ms = |n| Some(Duration::from_millis(n));
        // value, expected wait
        let rows: &[(&str, Option<Duration>)] = &[
            ("3", S(3)),
            (" 3\t", S(3)),
            ("007", S(7)),
            ("0", S(0)),
            ("1.5", ms(1500)),
            ("0.0015", Some(Duration::from_micros(1500))),
            ("2.0000000019", Some(Duration::new(2, 1))),
            ("1000000000", S(1_000_000_000)),
            ("1700000042", S(42)),
            ("1700000000.5", ms(500)),
            ("1699999999", S(0)),
            ("1000000001", S(0)),
            ("99999999999", S(99_999_999_999 - 1_700_000_000)),
            ("18446744073709551615", None),
            (
                "999999999999999999",
                S(999_999_999_999_999_999 - 1_700_000_000),
            ),
            // An epoch past what the system clock holds is no time at all.
            ("9999999999999999999", None),
            ("", None),
            (" ", None),
            ("-1", None),
            ("+1", None),
            ("1.", None),
            (".5", None),
            ("1.2.3", None),
            ("1e3", None),
            ("NaN", None),
            ("inf", None),
            ("3 s", None),
            ("٣", None),
            ("0x10", None),
        ];
        for (value, expected) in rows {
            assert_eq!(parse_reset(value, now()), *expected, "{value:?}");
        }
    }

    #[test]
    fn units_left_is_a_positive_integer_only() {
        for (value, left) in [
            ("1", true),
            (" 42 ", true),
            ("007", true),
            ("0", false),
            ("000", false),
            ("", false),
            ("-1", false),
            ("1.5", false),
            ("many", false),
        ] {
            assert_eq!(units_left(value), left, "{value:?}");
        }
    }

    #[test]
    fn a_megabyte_of_header_is_read_in_one_pass_and_ignored() {
        let big = "a".repeat(1 << 20);
        assert_eq!(parse_ratelimit(&big), None);
        assert_eq!(parse_reset(&big, now()), None);
        let digits = "9".repeat(1 << 20);
        assert_eq!(parse_reset(&digits, now()), None);
        let many = r#""q";r=1;t=1, "#.repeat(1 << 16) + r#""last";r=0;t=8"#;
        assert_eq!(parse_ratelimit(&many), S(8));
    }
}
