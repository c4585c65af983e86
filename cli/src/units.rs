//! Durations on the command line: the library's grammar, the one policy
//! files use (`30s`, `1.5s`, `250ms`, `2m`, `1h`, or a bare number of
//! seconds, as curl's `--max-time` takes).

pub(crate) use tower_rebound::config::parse_duration;
