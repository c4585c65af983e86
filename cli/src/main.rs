//! `rebound`: HTTP requests under a rebound policy, and policy checks.

mod check;
mod client;
mod demo;
mod load;
mod metrics;
mod progress;
mod request;
mod units;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for `success` and `accepted`.
const EXIT_SUCCESS: u8 = 0;
/// Exit status for every other outcome.
const EXIT_FAILED: u8 = 1;
/// Exit status for bad usage or an invalid policy.
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "rebound",
    version,
    about = "HTTP requests under a rebound policy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sends one request under a policy and writes the final response body to stdout.
    Request(request::RequestArgs),
    /// Validates policy files.
    Check(check::CheckArgs),
    /// Runs every behaviour of the seed API (or, with --api, of GitHub,
    /// Stripe, Azure or Google), misbehaviour included, against a local
    /// stand-in, and prints how the policy meets each.
    Demo(demo::DemoArgs),
    /// Calls a URL at a fixed rate for a while, and reports what the policy
    /// made of the calls.
    ///
    /// Every call goes through one client, as in a program: shared
    /// connections, one circuit breaker per host, one retry budget. The load
    /// is open: call i starts at i / rate after the start, whether
    /// earlier calls have finished or not, so `--rate 200 --duration 1s` is
    /// exactly 200 calls. A call due when --max-in-flight calls are in flight
    /// is dropped and counted, never queued. Each response body is read to
    /// the end and thrown away.
    ///
    /// The report, on stdout when the run ends: calls (started and dropped),
    /// dropped, the count of each outcome seen, requests sent (attempts and
    /// polls), amplification (requests / calls), and the p50, p90, p99 and
    /// max latency of each outcome, from the start of a call to the end of
    /// its body. --report json prints the same as one JSON object: calls,
    /// dropped, outcomes, requests, amplification, latency_ms.
    ///
    /// On a terminal a live line on stderr shows calls started, in flight,
    /// the outcomes so far and the time gone.
    ///
    /// Ctrl-C stops starting calls and gives those in flight 5 s to end (a
    /// second Ctrl-C gives up at once); calls still in flight then are
    /// counted under the outcome "abandoned", with the time they had run as
    /// their latency and none of their requests in "requests". The report
    /// covers what ran.
    ///
    /// Exit status: 0 when the run completed, whatever the outcomes; 130
    /// when Ctrl-C stopped it (the report is printed all the same); 2 for
    /// bad usage (a bound, the URL, a header, the body, the policy), with
    /// nothing sent; 1 when the run could not start, or its report could
    /// not be written.
    Load(load::LoadArgs),
}

fn main() -> ExitCode {
    install_tracing();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return ExitCode::from(usage_error(&error)),
    };
    let code = match cli.command {
        Command::Request(args) => request::run(args),
        Command::Check(args) => check::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Load(args) => load::run(args),
    };
    ExitCode::from(code)
}

/// Prints `--help` and `--version` as clap writes them; any other mistake
/// on the command line as one line (`rebound: ...`) with exit status 2.
fn usage_error(error: &clap::Error) -> u8 {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            if error.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_SUCCESS
            }
        }
        _ => {
            let rendered = error.render().to_string();
            let first = rendered
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("invalid command line");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("rebound: {first} (see rebound --help)");
            EXIT_USAGE
        }
    }
}

/// Writes `text` to stdout whole. A stdout that cannot take it (a reader
/// gone, a full disk) is one line on stderr and the exit status to end with:
/// `println!` would panic there, and a report cut short must not pass for a
/// whole one.
fn write_stdout(text: &str) -> Result<(), u8> {
    use std::io::Write;

    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| {
            eprintln!("rebound: cannot write to stdout: {e}");
            EXIT_FAILED
        })
}

/// A runtime with its timer and I/O, or the exit status of a failure to make one.
fn runtime(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, u8> {
    builder.enable_all().build().map_err(|e| {
        eprintln!("rebound: cannot start the runtime: {e}");
        EXIT_FAILED
    })
}

/// For `demo --trace`: every span and event of rebound at info level.
fn install_tracing_for_demo() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::fmt::format::FmtSpan;
    use tracing_subscriber::prelude::*;

    let filter = Targets::new().with_target("tower_rebound", tracing::Level::INFO);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_span_events(FmtSpan::CLOSE);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init();
}

/// Prints spans and events to stderr when `RUST_LOG` asks for them
/// (`RUST_LOG=tower_rebound=info` shows each call's span as it closes).
fn install_tracing() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::fmt::format::FmtSpan;
    use tracing_subscriber::prelude::*;

    let Ok(directives) = std::env::var("RUST_LOG") else {
        return;
    };
    let filter: Targets = match directives.parse() {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("rebound: ignoring RUST_LOG={directives:?}: {e}");
            return;
        }
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_span_events(FmtSpan::CLOSE);
    tracing_subscriber::registry().with(fmt).with(filter).init();
}
