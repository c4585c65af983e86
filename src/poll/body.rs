//! Operations whose progress is in the body of a `200`: what a status body
//! says, and the bounded read that gets it.
//!
//! Azure's status resource answers `200` with `{"status": "InProgress" |
//! "Succeeded" | "Failed" | "Canceled"}`; Google's Operation answers `200`
//! with `{"done": false}` until `{"done": true}` with `response` or `error`.
//! By the status code alone both are done at the first poll. A
//! [`Completion`] says where the body tells, and [`judge`] (pure, tested as
//! a table) reads it; both drivers read the body of a `200` status answer,
//! up to `poll.max_body_bytes`, only when `[poll]` has a completion rule.
//!
//! A finished operation's answer is returned with its body spent, since a
//! driver generic over the client's body type cannot put bytes back into it:
//! the bytes read are in the answer's [`StatusBody`] extension instead.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::Response;
use http_body::Body;
use serde_json::Value;

use crate::classify::error_body::pointer::Pointer;
use crate::classify::error_body::text_of;
use crate::error::ApiError;
use crate::settings::SettingsError;

/// Where a status body says how an operation is going: Azure's `status`
/// field with its values, or Google's `done` boolean, and the error object
/// of a failed operation; see the [poll module](crate::poll).
///
/// ```
/// use tower_rebound::poll::{Completion, PollSettings};
///
/// let google = Completion::done("/done", "/error")?;
/// let settings = PollSettings::builder().completion(google).build()?;
/// assert!(settings.completion().is_some());
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    rule: Rule,
    /// Where a failed or canceled operation's error object is.
    error_pointer: Pointer,
    /// Where the status URL is, for an operation that starts with a `200`
    /// naming itself in the body (Google).
    status_url: Option<StatusUrl>,
    /// Where a finished operation's result is in its status body (Google's
    /// `/response`).
    result: Option<Pointer>,
}

/// A status URL made from the first answer's body: a template with
/// `{origin}` (the request's `scheme://host[:port]`), `{first_segment}` (the
/// first segment of the request's path, such as `v1`) and `{name}` (the
/// text at a pointer into the body, such as Google's `/name`).
#[derive(Debug, Clone, PartialEq)]
struct StatusUrl {
    template: String,
    name: Pointer,
}

#[derive(Debug, Clone, PartialEq)]
enum Rule {
    /// A field whose value is one of four lists (Azure); an empty
    /// `running` is every other value.
    Status {
        pointer: Pointer,
        running: Vec<String>,
        succeeded: Vec<String>,
        failed: Vec<String>,
        canceled: Vec<String>,
    },
    /// A boolean that turns true at the end, and an error beside it
    /// (Google).
    Done { pointer: Pointer },
}

/// What a status body says. Public for the fuzz targets and property
/// tests, not for users.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still going: poll again.
    Running,
    /// Done, and it worked: the answer ends the call.
    Succeeded,
    /// Done, and it failed, with the errors of its error object.
    Failed(Vec<ApiError>),
    /// Canceled before it finished, with the errors of its error object
    /// when it has one.
    Canceled(Vec<ApiError>),
    /// The body does not say: not JSON, cut at the cap, no such field or
    /// a value in no list. Why, for the error's detail.
    Unreadable(String),
}

impl Completion {
    /// A status field (`poll.status_pointer`) whose value is in one of the
    /// lists (`poll.running`, `poll.succeeded`, `poll.failed`,
    /// `poll.canceled`), and the error object of a failed or canceled
    /// operation at `error_pointer` (`poll.error_pointer`). An empty
    /// `running` takes every value in none of the other three (Azure
    /// Resource Manager's contract); a value in no list of a rule whose
    /// `running` names some says nothing.
    pub fn status(
        pointer: &str,
        running: Vec<String>,
        succeeded: Vec<String>,
        failed: Vec<String>,
        canceled: Vec<String>,
        error_pointer: &str,
    ) -> Result<Completion, SettingsError> {
        if succeeded.is_empty() {
            return Err(SettingsError::new(
                "poll.status_pointer",
                "poll.status_pointer needs poll.succeeded: the status values of a finished operation, such as [\"Succeeded\"]",
            ));
        }
        Ok(Completion {
            rule: Rule::Status {
                pointer: Pointer::parse("poll.status_pointer", pointer)?,
                running,
                succeeded,
                failed,
                canceled,
            },
            error_pointer: Pointer::parse("poll.error_pointer", error_pointer)?,
            status_url: None,
            result: None,
        })
    }

    /// A boolean field (`poll.done_pointer`) that is true once the
    /// operation ended, failed when there is an error object at
    /// `error_pointer` (`poll.error_pointer`).
    pub fn done(pointer: &str, error_pointer: &str) -> Result<Completion, SettingsError> {
        Ok(Completion {
            rule: Rule::Done {
                pointer: Pointer::parse("poll.done_pointer", pointer)?,
            },
            error_pointer: Pointer::parse("poll.error_pointer", error_pointer)?,
            status_url: None,
            result: None,
        })
    }
}

impl Completion {
    /// Also follows operations that start with a `200` naming themselves in
    /// the body: the status URL is `template` (`poll.status_url`) with
    /// `{name}` the text at `name_pointer` (`poll.name_pointer`), such as
    /// Google's `"{origin}/{first_segment}/{name}"` and `"/name"`.
    pub fn with_status_url(
        mut self,
        template: &str,
        name_pointer: &str,
    ) -> Result<Completion, SettingsError> {
        let key = "poll.status_url";
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                return Err(SettingsError::new(
                    key,
                    format!("{key} has a \"{{\" that is not closed"),
                ));
            };
            let field = &rest[open + 1..open + close];
            if !matches!(field, "origin" | "first_segment" | "name") {
                return Err(SettingsError::new(
                    key,
                    format!(
                        "unknown field {{{field}}} in {key}: expected {{origin}}, {{first_segment}} or {{name}}"
                    ),
                ));
            }
            rest = &rest[open + close + 1..];
        }
        if !template.contains("{name}") {
            return Err(SettingsError::new(
                key,
                format!(
                    "{key} has no {{name}}: expected a template such as \"{{origin}}/{{first_segment}}/{{name}}\""
                ),
            ));
        }
        self.status_url = Some(StatusUrl {
            template: template.to_owned(),
            name: Pointer::parse("poll.name_pointer", name_pointer)?,
        });
        Ok(self)
    }

    /// Gives the caller the JSON at `pointer` (`poll.result_pointer`) of a
    /// finished operation's status body, such as Google's `"/response"`, as
    /// the answer's [`OperationResult`].
    pub fn with_result_pointer(mut self, pointer: &str) -> Result<Completion, SettingsError> {
        self.result = Some(Pointer::parse("poll.result_pointer", pointer)?);
        Ok(self)
    }

    /// The JSON at the result pointer of a finished operation's `body`,
    /// when there is a pointer and something at it.
    fn result_of(&self, body: &[u8]) -> Option<Bytes> {
        let pointer = self.result.as_ref()?;
        let value: Value = serde_json::from_slice(body).ok()?;
        let result = pointer.resolve(&value)?;
        serde_json::to_vec(result).ok().map(Bytes::from)
    }

    /// Whether the first answer's body names the status URL.
    pub(crate) fn names_status_url(&self) -> bool {
        self.status_url.is_some()
    }

    /// The status URL the first answer's `body` names, as text to resolve
    /// like a header's, or why there is none.
    #[doc(hidden)]
    pub fn status_url(&self, request: &http::Uri, body: &[u8]) -> Result<String, String> {
        let Some(url) = &self.status_url else {
            return Err("poll.status_url is not set".into());
        };
        let value: Value =
            serde_json::from_slice(body).map_err(|_| "the first answer's body is not JSON")?;
        let name = url
            .name
            .resolve(&value)
            .and_then(Value::as_str)
            .filter(|name| is_path(name))
            .ok_or_else(|| {
                format!(
                    "the first answer's body has no path text at {}",
                    url.name.as_str()
                )
            })?;
        let origin = match (request.scheme_str(), request.authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            _ => String::new(),
        };
        let first_segment = request
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        Ok(url
            .template
            .replace("{origin}", &origin)
            .replace("{first_segment}", first_segment)
            .replace("{name}", name.trim_start_matches('/')))
    }
}

/// Whether a name from a body may go into a URL's path as it is: no query,
/// fragment, dot segment or character to escape.
fn is_path(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/:@!$&'()*+,;=".contains(&b))
        && !name
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

impl Completion {
    /// The errors of a failed or canceled operation's error object, read
    /// as Azure and Google write it: its `code`, `message`, and Google's
    /// `status` as the cause; then, in order, each of its `details[]` that
    /// names a code (Azure's `code`, or the `reason` of Google's
    /// `ErrorInfo`), with its `message`. Details that name none (Google's
    /// `RetryInfo`, `Help`, ...) are no error. An array there is a list of
    /// such objects.
    fn errors_of(&self, body: &Value) -> Vec<ApiError> {
        let Some(found) = self.error_pointer.resolve(body) else {
            return Vec::new();
        };
        let objects = match found {
            Value::Array(items) => items.as_slice(),
            one => std::slice::from_ref(one),
        };
        let mut errors = Vec::new();
        for error in objects.iter().filter(|error| error.is_object()) {
            let text = |key: &str| error.get(key).and_then(text_of);
            let own = ApiError::new(text("code"), text("status"), text("message"), None);
            if own != ApiError::default() {
                errors.push(own);
            }
            let details = error.get("details").and_then(Value::as_array);
            for detail in details.into_iter().flatten() {
                let text = |key: &str| detail.get(key).and_then(text_of);
                if let Some(code) = text("code").or_else(|| text("reason")) {
                    errors.push(ApiError::new(Some(code), None, text("message"), None));
                }
            }
        }
        errors
    }
}

/// What `body` says of the operation. `truncated` when the read stopped at
/// the cap: such a body is not judged.
#[doc(hidden)]
pub fn judge(completion: &Completion, body: &[u8], truncated: bool) -> Verdict {
    if truncated {
        return Verdict::Unreadable(format!(
            "the status body is longer than poll.max_body_bytes ({} bytes read)",
            body.len()
        ));
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Verdict::Unreadable("the status body is not JSON".into());
    };
    let has_error = |value: &Value| {
        completion
            .error_pointer
            .resolve(value)
            .is_some_and(|error| !error.is_null())
    };
    match &completion.rule {
        Rule::Status {
            pointer,
            running,
            succeeded,
            failed,
            canceled,
        } => {
            let Some(status) = pointer.resolve(&value).and_then(Value::as_str) else {
                return Verdict::Unreadable(format!(
                    "the status body has no text at {}",
                    pointer.as_str()
                ));
            };
            let is_in = |list: &[String]| list.iter().any(|s| s.eq_ignore_ascii_case(status));
            if is_in(succeeded) {
                Verdict::Succeeded
            } else if is_in(failed) {
                Verdict::Failed(completion.errors_of(&value))
            } else if is_in(canceled) {
                Verdict::Canceled(completion.errors_of(&value))
            } else if running.is_empty() || is_in(running) {
                // Resource Manager's contract: any status but the terminal
                // ones means running, a provider's own word included.
                Verdict::Running
            } else {
                Verdict::Unreadable(format!(
                    "the status {status:?} at {} is in none of poll.running, poll.succeeded, poll.failed, poll.canceled",
                    pointer.as_str()
                ))
            }
        }
        Rule::Done { pointer } => match pointer.resolve(&value) {
            // proto3 JSON leaves `done: false` out.
            None | Some(Value::Null | Value::Bool(false)) => Verdict::Running,
            Some(Value::Bool(true)) if has_error(&value) => {
                Verdict::Failed(completion.errors_of(&value))
            }
            Some(Value::Bool(true)) => Verdict::Succeeded,
            Some(_) => Verdict::Unreadable(format!(
                "the status body has no boolean at {}",
                pointer.as_str()
            )),
        },
    }
}

/// The bytes of a finished operation's status body, as the poll layer read
/// them: its answer's own body is spent.
///
/// ```
/// # use tower_rebound::poll::StatusBody;
/// let response = http::Response::new(());
/// assert!(StatusBody::of(&response).is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusBody(pub Bytes);

impl StatusBody {
    /// The status body of a polled answer, when `[poll]` read it.
    pub fn of<B>(response: &Response<B>) -> Option<&Bytes> {
        response.extensions().get::<StatusBody>().map(|b| &b.0)
    }
}

/// A finished operation's result: the JSON at `poll.result_pointer` of its
/// status body (Google's `response`), serialized again.
///
/// ```
/// # use tower_rebound::poll::OperationResult;
/// let response = http::Response::new(());
/// assert!(OperationResult::of(&response).is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationResult(pub Bytes);

impl OperationResult {
    /// The result of a finished operation, when `[poll]` names where it
    /// is and its status body had one.
    pub fn of<B>(response: &Response<B>) -> Option<&Bytes> {
        response.extensions().get::<OperationResult>().map(|r| &r.0)
    }
}

/// A status answer whose body is being read, up to the cap.
pub(crate) struct StatusRead<R> {
    response: R,
    buf: BytesMut,
    cap: usize,
    truncated: bool,
}

impl<RB: Body + Unpin> StatusRead<Response<RB>> {
    pub(crate) fn new(response: Response<RB>, cap: usize) -> Box<Self> {
        Box::new(StatusRead {
            response,
            buf: BytesMut::new(),
            cap,
            truncated: false,
        })
    }

    /// Reads to the end of the body or to the cap. A body that breaks off
    /// counts as cut.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let body = self.response.body_mut();
            if self.buf.len() >= self.cap {
                self.truncated = !body.is_end_stream();
                return Poll::Ready(());
            }
            match std::task::ready!(Pin::new(body).poll_frame(cx)) {
                None => return Poll::Ready(()),
                Some(Err(_)) => {
                    self.truncated = true;
                    return Poll::Ready(());
                }
                Some(Ok(frame)) => {
                    let Ok(mut data) = frame.into_data() else {
                        continue;
                    };
                    let room = self.cap - self.buf.len();
                    if data.remaining() > room {
                        self.buf.put((&mut data).take(room));
                        self.truncated = true;
                        return Poll::Ready(());
                    }
                    self.buf.put(data);
                }
            }
        }
    }

    /// The answer, its bytes in [`StatusBody`], and what they say.
    pub(crate) fn finish(self, completion: &Completion) -> (Response<RB>, Bytes, Verdict) {
        let bytes = self.buf.freeze();
        let verdict = judge(completion, &bytes, self.truncated);
        let mut response = self.response;
        let extensions = response.extensions_mut();
        if verdict == Verdict::Succeeded
            && let Some(result) = completion.result_of(&bytes)
        {
            extensions.insert(OperationResult(result));
        }
        extensions.insert(StatusBody(bytes.clone()));
        (response, bytes, verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn azure() -> Completion {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        Completion::status(
            "/status",
            list(&["InProgress", "NotStarted", "Running"]),
            list(&["Succeeded"]),
            list(&["Failed"]),
            list(&["Canceled"]),
            "/error",
        )
        .unwrap()
    }

    fn google() -> Completion {
        Completion::done("/done", "/error").unwrap()
    }

    /// Azure's status rule as Resource Manager's contract has it: no
    /// running list.
    fn any_other_runs() -> Completion {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        Completion::status(
            "/status",
            Vec::new(),
            list(&["Succeeded"]),
            list(&["Failed"]),
            list(&["Canceled"]),
            "/error",
        )
        .unwrap()
    }

    fn codes(verdict: &Verdict) -> Vec<(Option<&str>, Option<&str>)> {
        match verdict {
            Verdict::Failed(errors) => errors.iter().map(|e| (e.code(), e.cause())).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn the_verdict_table() {
        use Verdict::*;
        let unreadable = |v: &Verdict| matches!(v, Unreadable(_));
        // rule, body, truncated, expected (None: unreadable)
        let rows: [(&str, Completion, &str, bool, Option<Verdict>); 17] = [
            (
                "azure running",
                azure(),
                r#"{"status":"InProgress"}"#,
                false,
                Some(Running),
            ),
            (
                "azure not started",
                azure(),
                r#"{"status":"NotStarted"}"#,
                false,
                Some(Running),
            ),
            (
                "azure any case",
                azure(),
                r#"{"status":"succeeded"}"#,
                false,
                Some(Succeeded),
            ),
            (
                "azure succeeded",
                azure(),
                r#"{"status":"Succeeded"}"#,
                false,
                Some(Succeeded),
            ),
            (
                "azure failed",
                azure(),
                r#"{"status":"Failed","error":{"code":"Conflict","message":"m"}}"#,
                false,
                Some(Failed(vec![ApiError::new(
                    Some("Conflict".into()),
                    None,
                    Some("m".into()),
                    None,
                )])),
            ),
            (
                "azure failed without error",
                azure(),
                r#"{"status":"Failed"}"#,
                false,
                Some(Failed(vec![])),
            ),
            (
                "azure canceled",
                azure(),
                r#"{"status":"Canceled"}"#,
                false,
                Some(Canceled(vec![])),
            ),
            (
                "azure canceled with its error",
                azure(),
                r#"{"status":"Canceled","error":{"code":"OperationCanceled","message":"m"}}"#,
                false,
                Some(Canceled(vec![ApiError::new(
                    Some("OperationCanceled".into()),
                    None,
                    Some("m".into()),
                    None,
                )])),
            ),
            (
                "azure unknown value",
                azure(),
                r#"{"status":"Deleting"}"#,
                false,
                None,
            ),
            (
                "azure no field",
                azure(),
                r#"{"state":"Succeeded"}"#,
                false,
                None,
            ),
            ("azure a number", azure(), r#"{"status":3}"#, false, None),
            ("not json", azure(), "<html>", false, None),
            ("cut at the cap", azure(), r#"{"status":"Succ"#, true, None),
            (
                "google running",
                google(),
                r#"{"name":"operations/1","done":false}"#,
                false,
                Some(Running),
            ),
            (
                "google done left out",
                google(),
                r#"{"name":"operations/1"}"#,
                false,
                Some(Running),
            ),
            (
                "google done",
                google(),
                r#"{"done":true,"response":{"id":1}}"#,
                false,
                Some(Succeeded),
            ),
            (
                "google done with error",
                google(),
                r#"{"done":true,"error":{"code":9,"message":"m","status":"FAILED_PRECONDITION"}}"#,
                false,
                Some(Failed(vec![ApiError::new(
                    Some("9".into()),
                    Some("FAILED_PRECONDITION".into()),
                    Some("m".into()),
                    None,
                )])),
            ),
        ];
        for (name, rule, body, truncated, expected) in rows {
            let verdict = judge(&rule, body.as_bytes(), truncated);
            match expected {
                Some(expected) => assert_eq!(verdict, expected, "{name}"),
                None => assert!(unreadable(&verdict), "{name}: {verdict:?}"),
            }
        }
        // A null error is no error; a string `done` says nothing.
        assert_eq!(
            judge(&google(), br#"{"done":true,"error":null}"#, false),
            Succeeded
        );
        assert!(unreadable(&judge(&google(), br#"{"done":"yes"}"#, false)));
        let failed = judge(
            &azure(),
            br#"{"status":"Failed","error":{"code":"A"}}"#,
            false,
        );
        assert_eq!(codes(&failed), [(Some("A"), None)]);
    }

    #[test]
    fn an_empty_running_list_takes_every_value_the_others_do_not() {
        let rule = any_other_runs();
        for running in [
            "NotStarted",
            "Accepted",
            "Provisioning",
            "PreparingVMDisk",
            "",
        ] {
            let body = format!(r#"{{"status":"{running}"}}"#);
            assert_eq!(
                judge(&rule, body.as_bytes(), false),
                Verdict::Running,
                "{running}"
            );
        }
        // The terminal values are still terminal, in any case.
        assert_eq!(
            judge(&rule, br#"{"status":"SUCCEEDED"}"#, false),
            Verdict::Succeeded
        );
        assert_eq!(
            judge(&rule, br#"{"status":"Failed"}"#, false),
            Verdict::Failed(vec![])
        );
        assert_eq!(
            judge(&rule, br#"{"status":"canceled"}"#, false),
            Verdict::Canceled(vec![])
        );
        // A status that is no text says nothing, as before.
        for body in [r#"{"status":3}"#, r#"{"state":"Running"}"#, "[]"] {
            assert!(
                matches!(judge(&rule, body.as_bytes(), false), Verdict::Unreadable(_)),
                "{body}"
            );
        }
        // A rule that lists its running values keeps to them.
        assert!(matches!(
            judge(&azure(), br#"{"status":"Provisioning"}"#, false),
            Verdict::Unreadable(_)
        ));
    }

    #[test]
    fn an_operation_s_error_details_follow_it_in_order() {
        let error = |code: &str, cause: Option<&str>, message: Option<&str>| {
            ApiError::new(
                Some(code.into()),
                cause.map(Into::into),
                message.map(Into::into),
                None,
            )
        };
        // Azure: each detail's code, with its message.
        let azure_failed = r#"{"status":"Failed","error":{"code":"AllocationFailed","message":"m",
            "details":[{"code":"SkuNotAvailable","message":"d1"},{"message":"no code"},
                       {"code":"ZonalAllocationFailed"},"text",7]}}"#;
        assert_eq!(
            judge(&azure(), azure_failed.as_bytes(), false),
            Verdict::Failed(vec![
                error("AllocationFailed", None, Some("m")),
                error("SkuNotAvailable", None, Some("d1")),
                error("ZonalAllocationFailed", None, None),
            ])
        );
        // A canceled operation's details are read as a failed one's.
        let azure_canceled = r#"{"status":"Canceled","error":{"code":"OperationCanceled",
            "details":[{"code":"CanceledByUser"}]}}"#;
        assert_eq!(
            judge(&azure(), azure_canceled.as_bytes(), false),
            Verdict::Canceled(vec![
                error("OperationCanceled", None, None),
                error("CanceledByUser", None, None),
            ])
        );
        // Google: the ErrorInfo's reason; a RetryInfo or Help names none.
        let google_failed = r#"{"done":true,"error":{"code":8,"message":"m","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2s"},
                       {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED",
                        "domain":"googleapis.com"},
                       {"@type":"type.googleapis.com/google.rpc.Help","links":[]}]}}"#;
        assert_eq!(
            judge(&google(), google_failed.as_bytes(), false),
            Verdict::Failed(vec![
                error("8", Some("RESOURCE_EXHAUSTED"), Some("m")),
                error("RATE_LIMIT_EXCEEDED", None, None),
            ])
        );
        // Details that are no array, and an error that has only details.
        for (body, codes) in [
            (
                r#"{"status":"Failed","error":{"code":"A","details":{"code":"B"}}}"#,
                &["A"][..],
            ),
            (
                r#"{"status":"Failed","error":{"details":[{"code":"B"}]}}"#,
                &["B"][..],
            ),
            (
                r#"{"status":"Failed","error":[{"code":"A","details":[{"code":"B"}]},{"code":"C"}]}"#,
                &["A", "B", "C"][..],
            ),
        ] {
            let Verdict::Failed(errors) = judge(&azure(), body.as_bytes(), false) else {
                panic!("{body}");
            };
            let got: Vec<&str> = errors.iter().filter_map(ApiError::code).collect();
            assert_eq!(got, codes, "{body}");
        }
    }

    #[test]
    fn the_first_answer_names_the_status_url() {
        let rule = google()
            .with_status_url("{origin}/{first_segment}/{name}", "/name")
            .unwrap();
        let request: http::Uri = "https://vision.example/v1/projects/p/images:annotate"
            .parse()
            .unwrap();
        let url = |body: &str| rule.status_url(&request, body.as_bytes());
        assert_eq!(
            url(r#"{"name":"operations/7","done":false}"#).as_deref(),
            Ok("https://vision.example/v1/operations/7")
        );
        assert_eq!(
            url(r#"{"name":"projects/p/operations/a-1"}"#).as_deref(),
            Ok("https://vision.example/v1/projects/p/operations/a-1")
        );
        for bad in [
            r#"{"done":false}"#,
            r#"{"name":7}"#,
            r#"{"name":"ops/1?x=1"}"#,
            r#"{"name":"../admin"}"#,
            r#"{"name":"ops 1"}"#,
            r#"{"name":""}"#,
            "nope",
        ] {
            assert!(url(bad).is_err(), "{bad}");
        }
        for (template, needle) in [
            ("{origin}/v1/{id}", "unknown field {id}"),
            ("{origin}/v1/ops", "has no {name}"),
            ("{origin}/{name", "not closed"),
        ] {
            let err = google().with_status_url(template, "/name").unwrap_err();
            assert!(err.to_string().contains(needle), "{template}: {err}");
        }
        assert!(google().with_status_url("{name}", "name").is_err());
    }

    #[test]
    fn a_status_rule_needs_a_succeeded_value_and_valid_pointers() {
        let err =
            Completion::status("/status", vec![], vec![], vec![], vec![], "/error").unwrap_err();
        assert!(err.to_string().contains("poll.succeeded"), "{err}");
        let err = Completion::done("done", "/error").unwrap_err();
        assert!(err.to_string().contains("poll.done_pointer"), "{err}");
        let err = Completion::done("/done", "error").unwrap_err();
        assert!(err.to_string().contains("poll.error_pointer"), "{err}");
    }

    mod props {
        use proptest::prelude::*;

        use super::*;
        use crate::poll::{Target, resolve_status_url};

        proptest! {
            /// Whatever a server sends, reading it ends in a verdict.
            #[test]
            fn any_body_gets_a_verdict(body in proptest::collection::vec(any::<u8>(), 0..256),
                                       truncated: bool) {
                let _ = judge(&azure(), &body, truncated);
                let _ = judge(&google(), &body, truncated);
                let _ = judge(&any_other_runs(), &body, truncated);
            }

            /// A name from a body never takes the status URL off the
            /// request's origin, nor adds a query or a fragment.
            #[test]
            fn a_named_status_url_stays_on_the_request_s_origin(
                name in "[ -~]{0,40}|[a-z0-9./:@!$&'()*+,;=~_-]{1,30}",
            ) {
                let rule = google()
                    .with_status_url("{origin}/{first_segment}/{name}", "/name")
                    .unwrap();
                let request: http::Uri = "https://api.example/v1/things".parse().unwrap();
                let body = serde_json::json!({ "name": name }).to_string();
                if let Ok(url) = rule.status_url(&request, body.as_bytes()) {
                    prop_assert!(!url.contains('?') && !url.contains('#'), "{url}");
                    match resolve_status_url(&request, &request, url.as_bytes(), &[]) {
                        Ok(Target::SameOrigin(uri)) => {
                            prop_assert_eq!(uri.authority().map(|a| a.as_str()), Some("api.example"));
                            prop_assert!(uri.path().starts_with("/v1/"), "{}", uri);
                        }
                        other => prop_assert!(false, "{url}: {other:?}"),
                    }
                }
            }
        }
    }
}
