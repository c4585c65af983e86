//! `rebound load --watch`: the policy file read again when it changes, and
//! put in force for the calls that start from then on.
//!
//! The file is read every [`EVERY`] and compared with what was read
//! before: no watcher service and no dependency, an editor that saves by
//! renaming a new file over the old one is seen as well, and so is an edit
//! that keeps the size within the file system's clock tick. A file that cannot
//! be read is said once, at its line and column, and the run goes on under
//! the policy in force.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::task::JoinHandle;
use tower_rebound::classify::Classifier;
use tower_rebound::events::MetricsListener;
use tower_rebound::{Policy, PolicySwap};

/// How often the file is looked at.
const EVERY: Duration = Duration::from_millis(200);

/// The classifier of the policy in force, which names each call's outcome.
pub(super) type Classifiers = Arc<RwLock<Arc<Classifier>>>;

/// The file's bytes, or `None` while it cannot be read (being replaced).
fn contents(path: &PathBuf) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// Watches `path` until the returned task is aborted. `metrics` gives each
/// new policy the `--metrics` listener.
pub(super) fn watch(
    path: PathBuf,
    swap: PolicySwap,
    classifiers: Classifiers,
    metrics: bool,
    say: impl Fn(&str) + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = contents(&path);
        let mut said: Option<String> = None;
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let now = contents(&path);
            if now.is_none() || now == seen {
                continue;
            }
            seen = now;
            match Policy::from_path(&path) {
                Ok(policy) => {
                    let policy = if metrics {
                        let listener = MetricsListener::for_policy(&policy);
                        policy.with_listener(listener)
                    } else {
                        policy
                    };
                    let classifier = Arc::clone(policy.classify_settings().classifier());
                    swap.swap(policy);
                    if let Ok(mut current) = classifiers.write() {
                        *current = classifier;
                    }
                    said = None;
                    say(&format!(
                        "rebound: {} changed: the calls from now on take its policy",
                        path.display()
                    ));
                }
                Err(error) => {
                    let text = error.to_string();
                    if said.as_deref() != Some(text.as_str()) {
                        say(&format!(
                            "rebound: {text} (the run goes on under the policy in force)"
                        ));
                        said = Some(text);
                    }
                }
            }
        }
    })
}
