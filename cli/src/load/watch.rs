//! `rebound load --watch`: the policy file read again when it changes
//! ([`PolicySwap::watch_file`]), and put in force for the calls that start
//! from then on. A file that cannot be read is said once, at its line and
//! column, and the run goes on under the policy in force.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::task::JoinHandle;
use tower_rebound::PolicySwap;
use tower_rebound::classify::Classifier;
use tower_rebound::events::MetricsListener;

/// How often the file is looked at.
const EVERY: Duration = Duration::from_millis(200);

/// The classifier of the policy in force, which names each call's outcome.
pub(super) type Classifiers = Arc<RwLock<Arc<Classifier>>>;

/// Watches `path` until the returned task is aborted. `metrics` gives each
/// new policy the `--metrics` listener.
pub(super) fn watch(
    path: PathBuf,
    swap: &PolicySwap,
    classifiers: Classifiers,
    metrics: bool,
    say: impl Fn(&str) + Send + 'static,
) -> JoinHandle<()> {
    let shown = path.display().to_string();
    let mut said: Option<String> = None;
    swap.watch_file(path, EVERY, move |loaded| match loaded {
        Ok(policy) => {
            let policy = if metrics {
                let listener = MetricsListener::for_policy(&policy);
                policy.with_listener(listener)
            } else {
                policy
            };
            if let Ok(mut current) = classifiers.write() {
                *current = Arc::clone(policy.classify_settings().classifier());
            }
            said = None;
            say(&format!(
                "rebound: {shown} changed: the calls from now on take its policy"
            ));
            Some(policy)
        }
        Err(error) => {
            let text = error.to_string();
            if said.as_deref() != Some(text.as_str()) {
                say(&format!(
                    "rebound: {text} (the run goes on under the policy in force)"
                ));
                said = Some(text);
            }
            None
        }
    })
}
