//! Laying one policy document over another: how a file overrides the base it
//! extends, and how a route overrides its file's sections.
//!
//! Key by key: tables merge, anything else (lists included) replaces. Three
//! keys change more than themselves, because what they decide makes other
//! keys of the base meaningless:
//!
//! - a status listed in a `[classify]` class list leaves the base's other
//!   lists (`retryable = [503]` over `connio` moves 503 out of
//!   `unsupported`);
//! - `retry.backoff.kind`, when it names the other kind, replaces the base's
//!   whole `[retry.backoff]` (an exponential `initial` means nothing to a
//!   constant backoff);
//! - `retry.backoff.jitter` other than `"proportional"` drops the base's
//!   `jitter_factor`;
//! - `error_body.format = "connio"` or `"problem"` drops the base's
//!   `[error_body.fields]`, which those formats never read;
//! - a key whose default follows another's (`max_interval` is at least
//!   `interval`, `max_open_for` at least `open_for`, `backoff.max` at least
//!   `backoff.initial`, `min_calls` at most `window`) drops the base's value
//!   when the file sets the other key past it without setting this one: the
//!   default that follows the file's value takes its place, as it would in a
//!   file with no base.

use toml::{Table, Value};

use crate::units::parse_duration;

/// Keys whose default follows another key: (section, the key, the key that
/// follows it, whether the follower is at least the key (else at most)).
const FOLLOWERS: [(&str, &str, &str, bool); 4] = [
    ("poll", "interval", "max_interval", true),
    ("circuit_breaker", "open_for", "max_open_for", true),
    ("circuit_breaker", "window", "min_calls", false),
    ("retry.backoff", "initial", "max", true),
];

/// The class lists of `[classify]`.
pub(crate) const CLASS_LISTS: [&str; 5] = [
    "success",
    "retryable",
    "pollable",
    "terminal",
    "unsupported",
];

/// Lays `over` over `into`; `path` is where they stand in a policy document
/// (`""` for a whole document, `"classify"` for that section).
pub(crate) fn merge(path: &str, into: &mut Table, over: &Table) {
    match path {
        "classify" => leave_other_classes(into, over),
        "retry.backoff" => {
            let kind = |t: &Table| {
                t.get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("exponential")
                    .to_owned()
            };
            if over.contains_key("kind") && kind(over) != kind(into) {
                into.clear();
            }
            if over
                .get("jitter")
                .is_some_and(|j| j.as_str() != Some("proportional"))
            {
                into.remove("jitter_factor");
            }
        }
        // A format that reads no pointers: the base's pointers would only
        // contradict it.
        "error_body" => {
            let reads_no_fields = matches!(
                over.get("format").and_then(Value::as_str),
                Some("connio" | "problem")
            );
            if reads_no_fields && !over.contains_key("fields") {
                into.remove("fields");
            }
        }
        _ => {}
    }
    for (_, leader, follower, at_least) in FOLLOWERS.iter().filter(|f| f.0 == path) {
        if over.contains_key(*follower) {
            continue;
        }
        let (Some(lead), Some(follow)) = (
            over.get(*leader).and_then(magnitude),
            into.get(*follower).and_then(magnitude),
        ) else {
            continue;
        };
        if (*at_least && follow < lead) || (!*at_least && follow > lead) {
            into.remove(*follower);
        }
    }
    for (key, value) in over {
        match (into.get_mut(key), value) {
            (Some(Value::Table(inner)), Value::Table(over)) => {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                merge(&path, inner, over);
            }
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

/// A duration in seconds, or a count.
fn magnitude(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(n) => Some(*n as f64),
        Value::Float(x) => Some(*x),
        Value::String(text) => parse_duration(text).ok().map(|d| d.as_secs_f64()),
        _ => None,
    }
}

/// Takes out of `base`'s class lists every status that `over` lists: a
/// status moved to another class leaves its old one.
fn leave_other_classes(base: &mut Table, over: &Table) {
    let moved: Vec<i64> = CLASS_LISTS
        .iter()
        .filter_map(|class| over.get(*class))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_integer)
        .collect();
    for class in CLASS_LISTS {
        if over.contains_key(class) {
            continue;
        }
        if let Some(Value::Array(list)) = base.get_mut(class) {
            list.retain(|status| status.as_integer().is_none_or(|s| !moved.contains(&s)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(base: &str, over: &str) -> Table {
        let mut base: Table = toml::from_str(base).unwrap();
        let over: Table = toml::from_str(over).unwrap();
        merge("", &mut base, &over);
        base
    }

    #[test]
    fn tables_merge_and_lists_replace() {
        let doc = merged(
            "[retry]\nmax_attempts = 4\nbuffer_max = \"1KiB\"\n[poll]\nallowed_origins = [\"a\"]\n",
            "[retry]\nmax_attempts = 2\n[poll]\nallowed_origins = [\"b\", \"c\"]\n",
        );
        assert_eq!(doc["retry"]["max_attempts"].as_integer(), Some(2));
        assert_eq!(doc["retry"]["buffer_max"].as_str(), Some("1KiB"));
        assert_eq!(doc["poll"]["allowed_origins"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_listed_status_leaves_the_base_classes() {
        let doc = merged(
            "[classify]\nretryable = [429, 500]\nunsupported = [503]\npollable = [202]\n",
            "[classify]\nretryable = [503]\n",
        );
        let list = |class: &str| doc["classify"][class].as_array().unwrap().len();
        assert_eq!(list("retryable"), 1);
        assert_eq!(list("unsupported"), 0);
        assert_eq!(list("pollable"), 1);
    }

    #[test]
    fn a_default_that_follows_another_key_follows_the_file() {
        let base = "[poll]\ninterval = \"1s\"\nmax_interval = \"10s\"\n\
                    [circuit_breaker]\nwindow = 100\nmin_calls = 20\nopen_for = \"5s\"\nmax_open_for = \"30s\"\n";
        let doc = merged(
            base,
            "[poll]\ninterval = \"20s\"\n[circuit_breaker]\nwindow = 10\nopen_for = \"10s\"\n",
        );
        assert!(!doc["poll"].as_table().unwrap().contains_key("max_interval"));
        assert!(
            !doc["circuit_breaker"]
                .as_table()
                .unwrap()
                .contains_key("min_calls")
        );
        // Still above the file's value: the base's choice stands.
        assert_eq!(doc["circuit_breaker"]["max_open_for"].as_str(), Some("30s"));
        // Set by the file: never dropped.
        let doc = merged(base, "[poll]\ninterval = \"20s\"\nmax_interval = \"15s\"\n");
        assert_eq!(doc["poll"]["max_interval"].as_str(), Some("15s"));
    }

    #[test]
    fn another_backoff_kind_replaces_the_base_backoff() {
        let base = "[retry.backoff]\nkind = \"exponential\"\ninitial = \"1s\"\nmax = \"5s\"\njitter = \"proportional\"\njitter_factor = 0.2\n";
        let doc = merged(
            base,
            "[retry.backoff]\nkind = \"constant\"\ndelay = \"2s\"\n",
        );
        let backoff = doc["retry"]["backoff"].as_table().unwrap();
        assert_eq!(backoff.len(), 2, "{backoff:?}");
        let doc = merged(
            base,
            "[retry.backoff]\nkind = \"exponential\"\nmax = \"9s\"\n",
        );
        assert_eq!(doc["retry"]["backoff"]["initial"].as_str(), Some("1s"));
        assert_eq!(
            doc["retry"]["backoff"]["jitter_factor"].as_float(),
            Some(0.2)
        );
        let doc = merged(base, "[retry.backoff]\njitter = \"full\"\n");
        assert!(
            !doc["retry"]["backoff"]
                .as_table()
                .unwrap()
                .contains_key("jitter_factor")
        );
    }
}
