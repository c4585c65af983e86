//! `rebound request`: one request under a policy, with a machine-readable report.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use rebound::{CallInfo, Outcome, Policy};
use tower::ServiceExt;

use crate::{EXIT_FAILED, EXIT_SUCCESS, EXIT_USAGE};

#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// The request method [default: GET, or POST with -d]
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,
    /// A request header, as 'Name: value'; repeatable
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// The request body, or @FILE to read it from a file (@- for stdin)
    #[arg(short = 'd', long = "data", value_name = "BODY")]
    data: Option<String>,
    #[command(flatten)]
    policy: PolicyArg,
    /// Write a report of the call to stderr as one line of JSON
    #[arg(long, value_enum, value_name = "FORMAT")]
    report: Option<ReportFormat>,
    /// The URL to request (http:// or https://)
    url: String,
}

/// The `-p` option of the commands that run a policy.
#[derive(Debug, Args)]
pub(crate) struct PolicyArg {
    /// A policy file, or the name of a preset (connio, standard)
    #[arg(
        short = 'p',
        long = "policy",
        value_name = "POLICY",
        default_value = "connio"
    )]
    pub(crate) policy: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    Json,
}

/// What the report says about a call.
struct Report {
    outcome: Outcome,
    status: Option<u16>,
    attempts: u32,
    polls: u32,
    error_codes: Vec<String>,
    elapsed_ms: u128,
}

impl Report {
    fn to_json(&self) -> String {
        serde_json::json!({
            "outcome": self.outcome.as_str(),
            "status": self.status,
            "attempts": self.attempts,
            "polls": self.polls,
            "error_codes": self.error_codes,
            "elapsed_ms": self.elapsed_ms,
        })
        .to_string()
    }
}

pub(crate) fn run(args: RequestArgs) -> u8 {
    let prepared = match prepare(&args) {
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
    let report = runtime.block_on(send(prepared, args.report.is_none()));
    if args.report.is_some() {
        eprintln!("{}", report.to_json());
    }
    if report.outcome.is_success() {
        EXIT_SUCCESS
    } else {
        EXIT_FAILED
    }
}

struct Prepared {
    policy: Policy,
    request: Request<Full<Bytes>>,
}

/// Everything that can be wrong with the command line, found before sending.
fn prepare(args: &RequestArgs) -> Result<Prepared, String> {
    let policy = load_policy(&args.policy.policy)?;
    let uri: Uri = args
        .url
        .parse()
        .map_err(|e| format!("invalid URL {:?}: {e}", args.url))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => {}
        Some("https") => {
            return Err(format!(
                "cannot request {:?}: this build of rebound speaks plain http only",
                args.url
            ));
        }
        _ => {
            return Err(format!(
                "invalid URL {:?}: expected http://HOST/PATH",
                args.url
            ));
        }
    }
    let body = match &args.data {
        None => Bytes::new(),
        Some(data) => read_data(data)?,
    };
    let method = match &args.method {
        Some(method) => Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("invalid method {method:?}"))?,
        None if args.data.is_some() => Method::POST,
        None => Method::GET,
    };
    let mut request = Request::builder().method(method).uri(uri);
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("invalid header {header:?}: expected 'Name: value'"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("invalid header name in {header:?}"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("invalid header value for {name}"))?;
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("invalid request: {e}"))?;
    Ok(Prepared { policy, request })
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
    let Prepared { policy, request } = prepared;
    let client = match rebound::client::hyper_https(policy.clone()) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("rebound: cannot load the system's root certificates: {e}");
            return Report {
                outcome: Outcome::Transport,
                status: None,
                attempts: 0,
                polls: 0,
                error_codes: Vec::new(),
                elapsed_ms: 0,
            };
        }
    };
    let started = Instant::now();
    let mut stdout = std::io::stdout().lock();

    let report = match client.oneshot(request).await {
        Ok(response) => {
            let info = CallInfo::of(&response);
            let status = response.status();
            let class = policy
                .classify_settings()
                .classifier()
                .classify_head(status, response.headers());
            let mut outcome = Outcome::of_response(class);
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        if let Some(data) = frame.data_ref() {
                            if stdout.write_all(data).is_err() {
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        if explain {
                            eprintln!("rebound: the response body broke off: {e}");
                        }
                        outcome = Outcome::Transport;
                        break;
                    }
                }
            }
            Report {
                outcome,
                status: Some(status.as_u16()),
                attempts: info.attempts(),
                polls: info.polls(),
                error_codes: Vec::new(),
                elapsed_ms: started.elapsed().as_millis(),
            }
        }
        Err(error) => {
            let _ = stdout.write_all(error.body());
            if explain {
                eprintln!("rebound: {error}");
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    eprintln!("  caused by: {cause}");
                    source = cause.source();
                }
            }
            Report {
                outcome: Outcome::from(error.kind()),
                status: error.status().map(|s| s.as_u16()),
                attempts: error.attempts(),
                polls: error.polls(),
                error_codes: error.error_codes().map(str::to_owned).collect(),
                elapsed_ms: started.elapsed().as_millis(),
            }
        }
    };
    let _ = stdout.flush();
    report
}
