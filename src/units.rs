//! Units in policy files: byte sizes (`65536`, `"64KiB"`) and durations
//! (`"250ms"`, `"1.5s"`, `"30s"`), durations read the same way on the
//! command line.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A number of bytes, written as an integer or as a string with a unit:
/// `B`, `KiB`, `MiB` (powers of 1024) or `KB`, `MB` (powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteSize(pub(crate) u64);

const EXPECTED_SIZE: &str =
    "a size in bytes: an integer, or a string such as \"64KiB\" or \"1MiB\"";

/// An integer followed by a unit, as in `"64KiB"` or `"250ms"`.
fn number_and_unit(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    Some((number.parse().ok()?, unit.trim()))
}

pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = number_and_unit(text)?;
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED_SIZE)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size {v}: expected {EXPECTED_SIZE}")))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_size(v).map(ByteSize).ok_or_else(|| {
                    E::custom(format!("invalid size {v:?}: expected {EXPECTED_SIZE}"))
                })
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

/// A duration, written as a string in the grammar of [`parse_duration`],
/// such as `"250ms"`, `"1.5s"` or `"30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DurationStr(pub(crate) Duration);

const EXPECTED_DURATION: &str =
    "a duration: a string such as \"250ms\", \"1.5s\", \"30s\", \"5m\" or \"1h\"";

/// The most digits a duration may have: more say nothing a nanosecond
/// clock can hold, and the sums stay far from overflowing.
const MAX_DIGITS: usize = 24;

/// A duration that [`parse_duration`] does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDuration {
    text: String,
}

impl std::fmt::Display for InvalidDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration {:?}: expected a number with ms, s, m or h, such as 250ms, 1.5s, 30s or 2m",
            self.text
        )
    }
}

impl std::error::Error for InvalidDuration {}

/// Reads a duration as policy files and the `rebound` command write them:
/// a decimal number (`30`, `1.5`; no sign, no exponent) followed by its
/// unit, `ms`, `s`, `m` or `h`, spaces allowed around both. A number with
/// no unit is seconds, as curl's `--max-time` takes it. Fractions finer
/// than a nanosecond are dropped. The result is finite; each key or flag
/// then checks it against its own bounds.
///
/// ```
/// use std::time::Duration;
/// use tower_rebound::config::parse_duration;
///
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
/// assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
/// assert!(parse_duration("1e3s").is_err());
/// assert!(parse_duration("-1s").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let invalid = || InvalidDuration {
        text: text.to_owned(),
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty()
        || (number.contains('.') && fraction.is_empty())
        || fraction.contains('.')
        || whole.len() + fraction.len() > MAX_DIGITS
    {
        return Err(invalid());
    }
    let nanos_per_unit: u128 = match unit.trim() {
        "ms" => 1_000_000,
        "" | "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(invalid()),
    };
    // The number as an integer of `fraction.len()` decimal places, exact.
    let digits: u128 = format!("{whole}{fraction}")
        .parse()
        .map_err(|_| invalid())?;
    let scale = 10u128.pow(fraction.len() as u32);
    let nanos = digits.checked_mul(nanos_per_unit).ok_or_else(invalid)? / scale;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| invalid())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

impl<'de> Deserialize<'de> for DurationStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = DurationStr;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED_DURATION)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationStr, E> {
                parse_duration(v).map(DurationStr).map_err(|_| {
                    E::custom(format!(
                        "invalid duration {v:?}: expected {EXPECTED_DURATION}"
                    ))
                })
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationStr, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: expected {EXPECTED_DURATION}, with its unit"
                )))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationStr, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: expected {EXPECTED_DURATION}, with its unit"
                )))
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, parse_size};
    use std::time::Duration;

    #[test]
    fn durations_with_units() {
        for (text, expected) in [
            ("0ms", Duration::ZERO),
            ("250ms", Duration::from_millis(250)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            (" 2 s ", Duration::from_secs(2)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.1s", Duration::from_millis(100)),
            ("2.5ms", Duration::from_micros(2500)),
            ("1.25m", Duration::from_secs(75)),
            ("0.5h", Duration::from_secs(1800)),
            ("7", Duration::from_secs(7)),
            ("0.25", Duration::from_millis(250)),
            ("1.0000000009s", Duration::from_nanos(1_000_000_000)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in [
            "",
            "s",
            "-1s",
            "+1s",
            "1.s",
            ".5s",
            "1.2.3s",
            "1e3s",
            "1d",
            "nan",
            "inf",
            "1 2s",
            "10 parsecs",
            "99999999999999999999h",
            "9999999999999999999999999s",
            "1.00000000000000000000000001s",
        ] {
            let error = parse_duration(bad).unwrap_err();
            assert!(
                error.to_string().starts_with("invalid duration"),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn sizes_with_and_without_units() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("65536"), Some(65536));
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("64 KiB"), Some(65536));
        assert_eq!(parse_size("2MiB"), Some(2 << 20));
        assert_eq!(parse_size("10KB"), Some(10_000));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in [
            "",
            "KiB",
            "-1",
            "1.5KiB",
            "12 parsecs",
            "99999999999999999999",
            "99999999999999GiB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
