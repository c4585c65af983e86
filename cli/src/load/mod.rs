//! `rebound load`: calls at a fixed rate through one client, to see what a
//! policy does under load: outcomes, requests per call, latencies.
//!
//! One client makes every call, so the calls share what a program's calls
//! share: connections, one circuit breaker per host and one retry budget.
//! Calls start on the schedule (`schedule.rs`) whether earlier ones have
//! finished or not, at most `--max-in-flight` at once; a call due when that
//! many are in flight is dropped and counted, never queued, so a slow server
//! cannot slow the load down and so hide itself.

mod call;
mod interrupt;
mod live;
mod schedule;
mod tally;
mod watch;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http::Request;
use http_body_util::Full;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_rebound::Policy;

use self::call::Caller;
use self::interrupt::Interrupts;
use self::live::{Live, Watched};
use self::schedule::{Rate, Schedule};
use self::tally::{ABANDONED, Tally};
use crate::client::{Connect, ConnectArgs};
use crate::metrics::{METRICS_HEADING, Metrics};
use crate::request::{MessageArgs, PolicyArg, ReportFormat};
use crate::{EXIT_FAILED, EXIT_SUCCESS, EXIT_USAGE};

/// Exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

/// How long calls in flight may go on after Ctrl-C.
const GRACE: Duration = Duration::from_secs(5);

/// The longest `--duration`.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    #[command(flatten)]
    message: MessageArgs,
    #[command(flatten)]
    policy: PolicyArg,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Calls to start each second, more than 0 and at most 100000 (200, or 2.5)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    rate: String,
    /// How long to start calls for, more than 0 and at most 24h (30s, 1.5s, 250ms, 2m, 1h)
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    duration: String,
    /// The most calls in flight at once; a call due when that many are in
    /// flight is dropped (counted, not sent, not queued)
    #[arg(
        long = "max-in-flight",
        value_name = "M",
        default_value = "1000",
        allow_hyphen_values = true
    )]
    max_in_flight: String,
    /// Print the report as one JSON object on stdout instead of the table
    #[arg(long, value_enum, value_name = "FORMAT")]
    report: Option<ReportFormat>,
    /// After the report, print the metrics the calls produced, in
    /// Prometheus's text format
    #[arg(long)]
    metrics: bool,
    /// Read the policy file (-p FILE) again whenever it changes: the calls
    /// that start after a change take the new policy; a file that cannot
    /// be read is said once, and the run goes on under the policy in force
    #[arg(long)]
    watch: bool,
    /// The URL to call (http:// or https://)
    url: String,
}

/// A run, checked before anything is sent.
struct Plan {
    policy: Policy,
    /// The policy file to read again when it changes (`--watch`).
    watch: Option<std::path::PathBuf>,
    /// Whether the calls record metrics (`--metrics`).
    metrics: bool,
    request: Request<Full<Bytes>>,
    connect: Connect,
    schedule: Schedule,
    max_in_flight: usize,
}

pub(crate) fn run(args: LoadArgs) -> u8 {
    let mut plan = match plan(&args) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("rebound: {message}");
            return EXIT_USAGE;
        }
    };
    let metrics = if args.metrics {
        match Metrics::install() {
            Ok(metrics) => {
                plan.policy = metrics.watch(plan.policy);
                plan.metrics = true;
                Some(metrics)
            }
            Err(message) => {
                eprintln!("rebound: {message}");
                return EXIT_FAILED;
            }
        }
    } else {
        None
    };
    let runtime = match crate::runtime(tokio::runtime::Builder::new_multi_thread()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let title = format!(
        "{} {} at {}/s for {} (policy {}, at most {} in flight)",
        plan.request.method(),
        shown_url(plan.request.uri()),
        plan.schedule.rate(),
        args.duration.trim(),
        args.policy.policy,
        plan.max_in_flight
    );
    let ran = match runtime.block_on(load(plan)) {
        Ok(ran) => ran,
        Err(message) => {
            eprintln!("rebound: {message}");
            return EXIT_FAILED;
        }
    };
    // Abandoned calls' connections, and name lookups still running, are not
    // waited for.
    runtime.shutdown_background();
    let ended = match ran.interrupted {
        Some(at) => {
            let abandoned = ran
                .tally
                .counts()
                .find(|(name, _)| *name == ABANDONED)
                .map_or(0, |(_, n)| n);
            let stopped = format!(
                "stopped by Ctrl-C after {:.2}s, {abandoned} calls abandoned",
                at.as_secs_f64()
            );
            eprintln!("rebound: {stopped}");
            stopped
        }
        None => format!("done in {:.2}s", ran.elapsed.as_secs_f64()),
    };
    let mut report = match args.report {
        Some(ReportFormat::Json) => format!("{}\n", ran.tally.to_json()),
        None => format!("{title}: {ended}\n\n{}", ran.tally.table()),
    };
    if let Some(metrics) = &metrics {
        report.push_str(&format!("\n{METRICS_HEADING}\n\n{}", metrics.render()));
    }
    // A report that cannot be written (a closed pipe, a full disk) is lost:
    // the run failed to say what it saw.
    if let Err(code) = crate::write_stdout(&report) {
        return code;
    }
    if ran.interrupted.is_some() {
        EXIT_INTERRUPTED
    } else {
        EXIT_SUCCESS
    }
}

/// `uri` as the report shows it: scheme, host, port and path, never the
/// userinfo or the query, which may carry credentials.
fn shown_url(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{}", uri.path())
}

/// Everything that can be wrong with the command line, found before sending.
fn plan(args: &LoadArgs) -> Result<Plan, String> {
    let rate = Rate::parse(&args.rate)?;
    let duration = crate::units::parse_duration(&args.duration)
        .ok()
        .filter(|d| !d.is_zero() && *d <= MAX_DURATION)
        .ok_or_else(|| {
            format!(
                "invalid --duration {:?}: expected more than 0 and at most 24h, such as 30s, 1.5s, 250ms or 2m",
                args.duration
            )
        })?;
    let max_in_flight = args
        .max_in_flight
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|m| (1..=Semaphore::MAX_PERMITS).contains(m))
        .ok_or_else(|| {
            format!(
                "invalid --max-in-flight {:?}: expected a whole number, at least 1",
                args.max_in_flight
            )
        })?;
    let policy = crate::request::load_policy(&args.policy.policy)?;
    let watch = if args.watch {
        let path = std::path::PathBuf::from(&args.policy.policy);
        if !path.is_file() {
            return Err(format!(
                "--watch reads a policy file again when it changes: -p {:?} is not a file",
                args.policy.policy
            ));
        }
        Some(path)
    } else {
        None
    };
    let uri = crate::request::parse_url(&args.url)?;
    let connect = args.connect.check()?;
    let request = args.message.build(uri)?;
    Ok(Plan {
        policy,
        watch,
        metrics: false,
        request,
        connect,
        schedule: Schedule::new(rate, duration),
        max_in_flight,
    })
}

/// What a run did.
struct Ran {
    tally: Tally,
    /// From the first call's start to the end of the last (or to giving up
    /// on it).
    elapsed: Duration,
    /// When Ctrl-C stopped the run, after its start.
    interrupted: Option<Duration>,
}

async fn load(plan: Plan) -> Result<Ran, String> {
    let https = plan.request.uri().scheme_str() == Some("https");
    let (layer, swap) = tower_rebound::ReloadableLayer::new(plan.policy.clone());
    let client = tower::Layer::layer(&layer, plan.connect.bare(https)?);
    let mut interrupts =
        Interrupts::listen().map_err(|e| format!("cannot listen for Ctrl-C: {e}"))?;
    let classifiers: watch::Classifiers = Arc::new(std::sync::RwLock::new(Arc::clone(
        plan.policy.classify_settings().classifier(),
    )));
    let caller = Caller {
        client,
        classifiers: Arc::clone(&classifiers),
        request: plan.request,
        tally: Arc::default(),
    };
    let slots = Arc::new(Semaphore::new(plan.max_in_flight));
    let started = Instant::now();
    let live = Live::start(Watched {
        tally: Arc::clone(&caller.tally),
        slots: Arc::clone(&slots),
        max_in_flight: plan.max_in_flight,
        started: started.into_std(),
        duration: plan.schedule.duration(),
    });
    let watcher = plan
        .watch
        .map(|path| watch::watch(path, &swap, classifiers, plan.metrics, live.sayer()));

    let mut calls = JoinSet::new();
    let mut interrupted = None;
    for i in 0..plan.schedule.calls() {
        let due = started + plan.schedule.offset(i);
        // A call that is late (the timer's granularity, a busy machine)
        // starts at once: the calls behind it keep their times.
        if due > Instant::now() {
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = interrupts.next() => {
                    interrupted = Some(started.elapsed());
                    break;
                }
            }
        } else if interrupts.pending() {
            interrupted = Some(started.elapsed());
            break;
        }
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                lock(&caller.tally).start();
                calls.spawn(caller.call(slot));
            }
            Err(_) => lock(&caller.tally).drop_call(),
        }
        // Reap the calls that ended, so the set holds only those in flight.
        while calls.try_join_next().is_some() {}
    }

    if interrupted.is_none() {
        tokio::select! {
            () = join_all(&mut calls) => {}
            () = interrupts.next() => interrupted = Some(started.elapsed()),
        }
    }
    if interrupted.is_some() && !calls.is_empty() {
        live.say(&format!(
            "rebound: Ctrl-C: waiting up to {}s for the {} calls in flight (Ctrl-C again to stop now)",
            GRACE.as_secs(),
            calls.len()
        ));
        tokio::select! {
            () = join_all(&mut calls) => {}
            () = tokio::time::sleep(GRACE) => {}
            () = interrupts.next() => {}
        }
        // Dropping a call counts it as abandoned (see `InFlight`).
        calls.shutdown().await;
    }
    let elapsed = started.elapsed();
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    live.finish();
    drop(slots);
    let tally = std::mem::take(&mut *lock(&caller.tally));
    Ok(Ran {
        tally,
        elapsed,
        interrupted,
    })
}

async fn join_all(calls: &mut JoinSet<()>) {
    while calls.join_next().await.is_some() {}
}

/// The tally, even after a call panicked while holding it: counts are
/// whole numbers updated in one step, so they stay right.
fn lock(tally: &Mutex<Tally>) -> MutexGuard<'_, Tally> {
    tally
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
