//! `rebound request`: one request under a policy, with a machine-readable report.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_rebound::classify::SuccessBody;
use tower_rebound::poll::{OperationResult, StatusBody};
use tower_rebound::route::RouteRequest;
use tower_rebound::{CallInfo, FinalUrl, Outcome, Policy};

use crate::client::{Connect, ConnectArgs, tls_failure};
use crate::{EXIT_FAILED, EXIT_SUCCESS, EXIT_USAGE};

#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    #[command(flatten)]
    message: MessageArgs,
    #[command(flatten)]
    policy: PolicyArg,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print the final response's status line and headers before its body
    #[arg(short = 'i', long)]
    include: bool,
    /// Write the body to FILE instead of stdout
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The most the whole call may take, waits included (30s, 1.5s, 2m; overrides timeouts.total)
    #[arg(
        long = "max-time",
        value_name = "DURATION",
        value_parser = crate::units::parse_duration,
        allow_hyphen_values = true
    )]
    max_time: Option<Duration>,
    /// Print each attempt, wait and poll to stderr as it happens
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Write a report of the call to stderr as one line of JSON
    #[arg(long, value_enum, value_name = "FORMAT")]
    report: Option<ReportFormat>,
    /// The URL to request (http:// or https://)
    url: String,
}

/// The method, headers and body of the request, as `request` and `load` take
/// them.
#[derive(Debug, Args)]
pub(crate) struct MessageArgs {
    /// The request method [default: GET, or POST with -d]
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,
    /// A request header, as 'Name: value'; repeatable
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// The request body, or @FILE to read it from a file (@- for stdin)
    #[arg(short = 'd', long = "data", value_name = "BODY")]
    data: Option<String>,
}

impl MessageArgs {
    /// The request to `uri`, or what is wrong with the method, a header or
    /// the body (an unreadable `@FILE`).
    pub(crate) fn build(&self, uri: Uri) -> Result<Request<Full<Bytes>>, String> {
        let body = match &self.data {
            None => Bytes::new(),
            Some(data) => read_data(data)?,
        };
        let method = match &self.method {
            Some(method) => Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("invalid method {method:?}"))?,
            None if self.data.is_some() => Method::POST,
            None => Method::GET,
        };
        let mut request = Request::builder().method(method).uri(uri);
        for header in &self.headers {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| format!("invalid header {header:?}: expected 'Name: value'"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("invalid header name in {header:?}"))?;
            let value = HeaderValue::from_str(value.trim())
                .map_err(|_| format!("invalid header value for {name}"))?;
            request = request.header(name, value);
        }
        request
            .body(Full::new(body))
            .map_err(|e| format!("invalid request: {e}"))
    }
}

/// `url` if it is an http:// or https:// URL with a host.
pub(crate) fn parse_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(format!(
            "invalid URL {url:?}: expected http://HOST/PATH or https://HOST/PATH"
        )),
    }
}

/// The `-p` option of the commands that run a policy.
#[derive(Debug, Args)]
pub(crate) struct PolicyArg {
    /// A policy file, or the name of a preset (standard: ordinary HTTP; connio: the seed API;
    /// github, stripe, azure, google: those APIs; none)
    #[arg(
        short = 'p',
        long = "policy",
        value_name = "POLICY",
        default_value = "standard"
    )]
    pub(crate) policy: String,
}

/// The `--report` formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ReportFormat {
    Json,
}

/// What the report says about a call.
struct Report {
    outcome: Outcome,
    status: Option<u16>,
    attempts: u32,
    polls: u32,
    /// Every request sent: attempts, status requests and their retries.
    requests: u32,
    error_codes: Vec<String>,
    /// One line naming the cause of a failure, as the message on stderr
    /// says it.
    error: Option<String>,
    /// Why a retry that was due was not sent.
    retry_refused: Option<&'static str>,
    /// The body could not be written: the command fails, whatever the
    /// call's outcome.
    output_failed: bool,
    elapsed_ms: u128,
    /// When the policy has routes: the route's name (or index), or `None`
    /// for the policy's own settings.
    route: Option<Option<String>>,
    /// The status URL that ended a polled call.
    final_url: Option<String>,
}

impl Report {
    fn failed_before_sending() -> Report {
        Report {
            outcome: Outcome::Transport,
            status: None,
            attempts: 0,
            polls: 0,
            requests: 0,
            error_codes: Vec::new(),
            error: None,
            retry_refused: None,
            output_failed: false,
            elapsed_ms: 0,
            route: None,
            final_url: None,
        }
    }

    fn to_json(&self) -> String {
        let mut json = serde_json::json!({
            "outcome": self.outcome.as_str(),
            "status": self.status,
            "attempts": self.attempts,
            "polls": self.polls,
            "requests": self.requests,
            "error_codes": self.error_codes,
            "error": self.error,
            "elapsed_ms": self.elapsed_ms,
        });
        if let Some(refusal) = self.retry_refused {
            json["retry_refused"] = refusal.into();
        }
        if let Some(route) = &self.route {
            json["route"] = route.as_deref().into();
        }
        if let Some(url) = &self.final_url {
            json["final_url"] = url.as_str().into();
        }
        json.to_string()
    }
}

pub(crate) fn run(args: RequestArgs) -> u8 {
    let mut prepared = match prepare(&args) {
        Ok(prepared) => prepared,
        Err(message) => {
            eprintln!("rebound: {message}");
            return EXIT_USAGE;
        }
    };
    let runtime = match crate::runtime(tokio::runtime::Builder::new_current_thread()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let (policy, _progress) = crate::progress::install(prepared.policy, args.verbose);
    prepared.policy = policy;
    let report = runtime.block_on(send(prepared, args.report.is_none()));
    if args.report.is_some() {
        eprintln!("{}", report.to_json());
    }
    if report.outcome.is_success() && !report.output_failed {
        EXIT_SUCCESS
    } else {
        EXIT_FAILED
    }
}

struct Prepared {
    policy: Policy,
    request: Request<Full<Bytes>>,
    connect: Connect,
    include: bool,
    output: Option<PathBuf>,
    route: Option<Option<String>>,
}

/// Everything that can be wrong with the command line, found before sending.
fn prepare(args: &RequestArgs) -> Result<Prepared, String> {
    let mut policy = load_policy(&args.policy.policy)?;
    if let Some(total) = args.max_time {
        policy = policy
            .with_total_timeout(total)
            .map_err(|e| format!("invalid --max-time: {e}"))?;
    }
    let uri = parse_url(&args.url)?;
    let connect = args.connect.check()?;
    if let Some(output) = &args.output {
        check_output(output)?;
    }
    let request = args.message.build(uri)?;
    let route = (!policy.routes().is_empty()).then(|| {
        policy.route_of(&RouteRequest::of(&request)).map(|i| {
            policy.routes()[i]
                .name()
                .map_or_else(|| i.to_string(), str::to_owned)
        })
    });
    Ok(Prepared {
        policy,
        request,
        connect,
        include: args.include,
        output: args.output.clone(),
        route,
    })
}

/// `-o FILE` must name a file in a folder that exists.
fn check_output(output: &Path) -> Result<(), String> {
    let folder = match output.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        return Err(format!(
            "cannot write -o {}: the folder {} does not exist",
            output.display(),
            folder.display()
        ));
    }
    if output.is_dir() {
        return Err(format!(
            "cannot write -o {}: it is a folder",
            output.display()
        ));
    }
    Ok(())
}

/// A file path if one exists, else a preset name.
pub(crate) fn load_policy(policy: &str) -> Result<Policy, String> {
    if Path::new(policy).exists() {
        Policy::from_path(policy).map_err(|e| e.to_string())
    } else if Policy::preset_names().contains(&policy) {
        Policy::preset(policy).map_err(|e| e.to_string())
    } else {
        Err(format!(
            "no policy file or preset named {policy:?}: presets are {}",
            Policy::preset_names().join(", ")
        ))
    }
}

fn read_data(data: &str) -> Result<Bytes, String> {
    let Some(path) = data.strip_prefix('@') else {
        return Ok(Bytes::copy_from_slice(data.as_bytes()));
    };
    let mut bytes = Vec::new();
    let read = if path == "-" {
        std::io::stdin().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    read.map_err(|e| format!("cannot read the body from {path:?}: {e}"))?;
    Ok(Bytes::from(bytes))
}

async fn send(prepared: Prepared, explain: bool) -> Report {
    let Prepared {
        policy,
        request,
        connect,
        include,
        output,
        route,
    } = prepared;
    let host = request.uri().host().unwrap_or_default().to_owned();
    let https = request.uri().scheme_str() == Some("https");
    let client = match connect.client(policy.clone(), https) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("rebound: {e}");
            return Report {
                route,
                error: Some(e.to_string()),
                ..Report::failed_before_sending()
            };
        }
    };
    let started = Instant::now();
    let mut out = match Output::open(output.as_deref()) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("rebound: {e}");
            return Report {
                route,
                error: Some(e.clone()),
                ..Report::failed_before_sending()
            };
        }
    };

    let mut report = match client.oneshot(request).await {
        Ok(response) => {
            let info = CallInfo::of(&response);
            let final_url = FinalUrl::of(&response).map(ToString::to_string);
            let status = response.status();
            let class = policy
                .classify_settings()
                .classifier()
                .classify_head(status, response.headers());
            let mut outcome = Outcome::of_response(class);
            if include {
                out.write(&head_of(
                    response.version(),
                    status,
                    Some(response.headers()),
                ));
            }
            // A status body read by `[poll]` is spent: what it said is in
            // the answer's extensions, the operation's result first.
            let read = OperationResult::of(&response)
                .or_else(|| StatusBody::of(&response))
                .cloned();
            if let Some(read) = read {
                out.write(&read);
            }
            // So is the start of a success body a rule read for error
            // codes: the body yields the rest.
            if let Some(read) = SuccessBody::of(&response) {
                out.write(&read.bytes);
            }
            let mut body = response.into_body();
            let mut broke_off = None;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        if let Some(data) = frame.data_ref() {
                            if !out.write(data) {
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        let line = format!("the response body broke off: {e}");
                        if explain {
                            eprintln!("rebound: {line}");
                        }
                        outcome = Outcome::Transport;
                        broke_off = Some(line);
                        break;
                    }
                }
            }
            Report {
                outcome,
                status: Some(status.as_u16()),
                attempts: info.attempts(),
                polls: info.polls(),
                requests: info.requests(),
                error_codes: Vec::new(),
                error: broke_off,
                retry_refused: None,
                output_failed: false,
                elapsed_ms: started.elapsed().as_millis(),
                route,
                final_url,
            }
        }
        Err(error) => {
            if include {
                if let Some(status) = error.status() {
                    out.write(&head_of(http::Version::HTTP_11, status, None));
                }
            }
            out.write(error.body());
            let headline = match tls_failure(&error, &host) {
                Some(words) => format!("transport: {words}"),
                None => error.to_string(),
            };
            let advice = error.advice();
            let mut causes = Vec::new();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                causes.push(cause.to_string());
                source = cause.source();
            }
            if explain {
                eprintln!("rebound: {headline}; {advice}");
                for cause in &causes {
                    eprintln!("  caused by: {cause}");
                }
            }
            Report {
                outcome: Outcome::from(error.kind()),
                status: error.status().map(|s| s.as_u16()),
                attempts: error.attempts(),
                polls: error.polls(),
                requests: error.requests(),
                error_codes: error.error_codes().map(str::to_owned).collect(),
                error: Some(error_line(&headline, &causes)),
                retry_refused: error.retry_refused().map(|r| r.as_str()),
                output_failed: false,
                elapsed_ms: started.elapsed().as_millis(),
                route,
                final_url: None,
            }
        }
    };
    if let Some(failed) = out.finish() {
        // The call may have succeeded (its outcome says so), but its answer
        // is lost: the command fails.
        eprintln!("rebound: {failed}");
        report.error.get_or_insert(failed);
        report.output_failed = true;
    }
    report
}

/// The report's one-line cause: the message, then the innermost cause
/// (the one that names what happened: refused, reset, a certificate), when
/// the message does not already say it.
fn error_line(headline: &str, causes: &[String]) -> String {
    match causes.last() {
        Some(root) if !headline.contains(root.as_str()) => format!("{headline}: {root}"),
        _ => headline.to_owned(),
    }
}

/// The status line and headers `-i` prints, as curl does.
fn head_of(
    version: http::Version,
    status: http::StatusCode,
    headers: Option<&http::HeaderMap>,
) -> Vec<u8> {
    let version = match version {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let mut head = format!(
        "{version} {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in headers.into_iter().flatten() {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Where the body goes: stdout, or the `-o` file, created when the call
/// starts. The first write that fails is kept, and nothing more is written.
struct Output {
    sink: Sink,
    failed: Option<String>,
}

enum Sink {
    Stdout(std::io::StdoutLock<'static>),
    File(std::io::BufWriter<std::fs::File>, PathBuf),
}

impl Output {
    fn open(path: Option<&Path>) -> Result<Output, String> {
        let sink = match path {
            None => Sink::Stdout(std::io::stdout().lock()),
            Some(path) => std::fs::File::create(path)
                .map(|file| Sink::File(std::io::BufWriter::new(file), path.to_owned()))
                .map_err(|e| format!("cannot write -o {}: {e}", path.display()))?,
        };
        Ok(Output { sink, failed: None })
    }

    /// Writes `bytes`; false when the destination is gone.
    fn write(&mut self, bytes: &[u8]) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let written = match &mut self.sink {
            Sink::Stdout(out) => out.write_all(bytes),
            Sink::File(out, _) => out.write_all(bytes),
        };
        match written {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(self.cannot_write(&e));
                false
            }
        }
    }

    /// Flushes what is buffered; the first write that failed, if any.
    fn finish(mut self) -> Option<String> {
        if self.failed.is_none() {
            let flushed = match &mut self.sink {
                Sink::Stdout(out) => out.flush(),
                Sink::File(out, _) => out.flush(),
            };
            if let Err(e) = flushed {
                self.failed = Some(self.cannot_write(&e));
            }
        }
        self.failed
    }

    fn cannot_write(&self, error: &std::io::Error) -> String {
        match &self.sink {
            Sink::Stdout(_) => format!("cannot write the body to stdout: {error}"),
            Sink::File(_, path) => format!("cannot write -o {}: {error}", path.display()),
        }
    }
}
