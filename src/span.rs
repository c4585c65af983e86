//! What the spans of a call record of its request and of its errors: shared
//! by the trace layer (the call's span), retry (each attempt's) and poll (each
//! status request's), so that every span names things the same way.

use std::fmt;

use http::{HeaderMap, StatusCode, Uri};
use tracing::Span;

use crate::error::Error;
use crate::status::{Classifier, RuleInput, StatusClass};

/// Records what an error says on a span with OpenTelemetry's fields:
/// `http.response.status_code`, `error.type` (the status code of an error
/// response, else the outcome name) and `rebound.error_codes`.
pub(crate) fn record_error_fields(span: &Span, error: &Error) {
    match error.status() {
        Some(status) => {
            span.record("http.response.status_code", status.as_u16());
            span.record("error.type", status.as_str());
        }
        None => {
            span.record("error.type", error.kind().as_str());
        }
    }
    if error.status().is_some() {
        record_decision(span, error.rule());
    }
    let mut codes = error.error_codes();
    if let Some(first) = codes.next() {
        let joined = codes.fold(first.to_owned(), |mut all, code| {
            all.push(',');
            all.push_str(code);
            all
        });
        span.record("rebound.error_codes", joined.as_str());
    }
}

/// Records what decided the class of a response: `rebound.decided_by` is
/// `"rule"` or `"table"`, and `rebound.rule` names the rule.
pub(crate) fn record_decision(span: &Span, rule: Option<&str>) {
    match rule {
        Some(rule) => {
            span.record("rebound.decided_by", "rule");
            span.record("rebound.rule", rule);
        }
        None => {
            span.record("rebound.decided_by", "table");
        }
    }
}

/// The class of a response head under `classifier`, and the label of the
/// rule that decided it.
pub(crate) fn decide_head<'c>(
    classifier: &'c Classifier,
    status: StatusCode,
    headers: &HeaderMap,
) -> (StatusClass, Option<&'c str>) {
    let decision = classifier.decide(&RuleInput::new(status, headers));
    let rule = decision
        .rule()
        .and_then(|i| classifier.rule_label(i))
        .map(|label| &**label);
    (decision.class(), rule)
}

/// Writes a URI without its userinfo and query string, which may hold secrets.
pub(crate) struct UrlWithoutQuery<'a>(pub(crate) &'a Uri);

impl fmt::Display for UrlWithoutQuery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri = self.0;
        if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
            write!(f, "{scheme}://{}", authority.host())?;
            if let Some(port) = authority.port() {
                write!(f, ":{port}")?;
            }
        }
        f.write_str(uri.path())
    }
}

#[cfg(test)]
mod tests {
    use super::UrlWithoutQuery;
    use http::Uri;

    #[test]
    fn urls_lose_query_and_userinfo() {
        let cases = [
            (
                "http://api.example/a/b?key=secret",
                "http://api.example/a/b",
            ),
            (
                "https://user:pw@api.example:8443/x?t=1",
                "https://api.example:8443/x",
            ),
            ("http://[::1]:8080/", "http://[::1]:8080/"),
            ("/relative/path?q=1", "/relative/path"),
        ];
        for (uri, expected) in cases {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(UrlWithoutQuery(&uri).to_string(), expected);
        }
    }
}
