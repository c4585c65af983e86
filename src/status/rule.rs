//! Rules: classes decided by more than the status, before the status table.

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{FIRST_STATUS, LAST_STATUS, StatusClass};
use crate::settings::SettingsError;

/// What a rule sees of a response.
///
/// The error codes are there only once the body has been read, which
/// happens for a response the rules before and the status table class as a
/// failure; see [`Rule`].
#[derive(Debug, Clone, Copy)]
pub struct RuleInput<'a> {
    status: StatusCode,
    headers: &'a HeaderMap,
    codes: Option<&'a [&'a str]>,
    messages: &'a [&'a str],
}

impl<'a> RuleInput<'a> {
    /// A response head, its body not read.
    pub fn new(status: StatusCode, headers: &'a HeaderMap) -> Self {
        RuleInput {
            status,
            headers,
            codes: None,
            messages: &[],
        }
    }

    /// The same response with the error codes its body carried.
    pub fn with_codes(mut self, codes: &'a [&'a str]) -> Self {
        self.codes = Some(codes);
        self
    }

    /// The same response with the error messages its body carried, besides
    /// its codes ([`with_codes`](Self::with_codes) says the body was read).
    pub fn with_messages(mut self, messages: &'a [&'a str]) -> Self {
        self.messages = messages;
        self
    }

    /// The same response, its body not read.
    pub(crate) fn head(&self) -> RuleInput<'a> {
        RuleInput {
            codes: None,
            messages: &[],
            ..*self
        }
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The error codes of the body, in order; `None` before it is read.
    pub fn codes(&self) -> Option<&'a [&'a str]> {
        self.codes
    }

    /// The error messages of the body, in order; empty before it is read.
    pub fn messages(&self) -> &'a [&'a str] {
        self.messages
    }
}

type Custom = Arc<dyn Fn(&RuleInput<'_>) -> Option<StatusClass> + Send + Sync>;

/// A rule of a status table: when a response matches, the rule's class is
/// its class, whatever the table says. Rules are tried in order, before the
/// table; the first that matches decides.
///
/// A rule matches when every condition it names holds: the status is one of
/// its statuses, the header is there (with one of its values, exactly, when
/// it names values), the body carries one of its error codes. A rule that names error codes needs the body read: it is
/// tried only on responses that the rules without codes and the table class
/// as failures (retryable, terminal, unsupported), whose bodies are read
/// anyway, up to `error_body.max_bytes`, so it costs no extra read. It can
/// only yield a failure class: the body it read cannot be handed back as a
/// success.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use tower_rebound::classify::{ClassifySettings, Rule, RuleInput, StatusClass};
///
/// let settings = ClassifySettings::builder()
///     .retryable([429, 500])
///     .rule(Rule::new(StatusClass::Retryable).status([400]).code(["Throttled"]).named("throttled"))
///     .rule(Rule::new(StatusClass::Terminal).status([200]).header("X-Status", "failed"))
///     .build()?;
/// let classifier = settings.classifier();
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-status", "failed".parse().unwrap());
/// let head = RuleInput::new(StatusCode::OK, &headers);
/// assert_eq!(classifier.decide(&head).class(), StatusClass::Terminal);
///
/// let none = HeaderMap::new();
/// let codes = ["Throttled"];
/// let read = RuleInput::new(StatusCode::BAD_REQUEST, &none).with_codes(&codes);
/// let decision = classifier.decide(&read);
/// assert_eq!(decision.class(), StatusClass::Retryable);
/// assert_eq!(classifier.rule_name(decision.rule().unwrap()), Some("throttled"));
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Clone)]
pub struct Rule {
    name: Option<Arc<str>>,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Match {
        statuses: Vec<u16>,
        codes: Vec<String>,
        /// Text an error message must contain, lower case.
        messages: Vec<String>,
        header: Option<Header>,
        class: StatusClass,
    },
    Custom(Custom),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Header {
    Parsed(HeaderName, Values),
    Invalid(String),
}

/// What a header condition asks of the header's values.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Values {
    /// Any value: the header is there.
    Present,
    /// One of the header's values is exactly one of these.
    AnyOf(Vec<HeaderValue>),
}

impl Header {
    fn new(name: &str, values: Option<&[&str]>) -> Header {
        let invalid = || {
            let shown = match values {
                None => name.to_owned(),
                Some(values) => format!("{name}: {}", values.join(" | ")),
            };
            Header::Invalid(shown)
        };
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            return invalid();
        };
        let Some(values) = values else {
            return Header::Parsed(name, Values::Present);
        };
        match values
            .iter()
            .map(|v| HeaderValue::from_str(v))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(values) if !values.is_empty() => Header::Parsed(name, Values::AnyOf(values)),
            _ => invalid(),
        }
    }

    fn matches(&self, headers: &HeaderMap) -> bool {
        match self {
            Header::Parsed(name, Values::Present) => headers.contains_key(name),
            Header::Parsed(name, Values::AnyOf(wanted)) => headers
                .get_all(name)
                .iter()
                .any(|v| wanted.iter().any(|w| w == v)),
            Header::Invalid(_) => false,
        }
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Header::Parsed(name, Values::Present) => write!(f, "{name}"),
            Header::Parsed(name, Values::AnyOf(values)) => {
                write!(f, "{name}: ")?;
                for (i, value) in values.iter().enumerate() {
                    let sep = if i == 0 { "" } else { " | " };
                    write!(f, "{sep}{value:?}")?;
                }
                Ok(())
            }
            Header::Invalid(text) => f.write_str(text),
        }
    }
}

impl Rule {
    /// A rule that yields `class`; name at least one condition.
    pub fn new(class: StatusClass) -> Rule {
        Rule {
            name: None,
            kind: Kind::Match {
                statuses: Vec::new(),
                codes: Vec::new(),
                messages: Vec::new(),
                header: None,
                class,
            },
        }
    }

    /// A rule written as a function, for what the conditions cannot say. It
    /// is called with the response head; when the body of a failure is read
    /// and the function comes before the rule that decided the head, it is
    /// called again with the error codes (then a success or pollable answer
    /// is passed over: the body is no longer there to hand back). `None`
    /// leaves the response to the next rule.
    pub fn custom(
        decide: impl Fn(&RuleInput<'_>) -> Option<StatusClass> + Send + Sync + 'static,
    ) -> Rule {
        Rule {
            name: None,
            kind: Kind::Custom(Arc::new(decide)),
        }
    }

    /// The same rule with a name, for spans (`rebound.rule`) and warnings.
    pub fn named(mut self, name: &str) -> Rule {
        self.name = Some(Arc::from(name));
        self
    }

    /// Matches only these statuses.
    pub fn status(mut self, more: impl IntoIterator<Item = u16>) -> Rule {
        if let Kind::Match { statuses, .. } = &mut self.kind {
            statuses.extend(more);
        }
        self
    }

    /// Matches only a body that carries one of these error codes.
    pub fn code<S: Into<String>>(mut self, more: impl IntoIterator<Item = S>) -> Rule {
        if let Kind::Match { codes, .. } = &mut self.kind {
            codes.extend(more.into_iter().map(Into::into));
        }
        self
    }

    /// Matches only a body with an error message that contains one of
    /// these, in any case (`message = "secondary rate limit"`): for APIs
    /// that say in words what their codes do not. Like a code, it needs the
    /// body, read for a failure (or a success the rule names).
    pub fn message<S: Into<String>>(mut self, more: impl IntoIterator<Item = S>) -> Rule {
        if let Kind::Match { messages, .. } = &mut self.kind {
            messages.extend(more.into_iter().map(|m| m.into().to_lowercase()));
        }
        self
    }

    /// Matches only a response with header `name` (in any case) of
    /// exactly `value`; replaces the rule's header condition, if any.
    pub fn header(self, name: &str, value: &str) -> Rule {
        self.header_any_of(name, [value])
    }

    /// Matches only a response that has header `name`, whatever its value
    /// (`header = "retry-after"`).
    pub fn header_present(self, name: &str) -> Rule {
        self.with_header(Header::new(name, None))
    }

    /// Matches only a response with header `name` of exactly one of
    /// `values` (`header = "x-status: failed | canceled"`). At least one
    /// value; each is compared whole, `*` and `|` included.
    pub fn header_any_of<'v>(self, name: &str, values: impl IntoIterator<Item = &'v str>) -> Rule {
        let values: Vec<&str> = values.into_iter().collect();
        self.with_header(Header::new(name, Some(&values)))
    }

    fn with_header(mut self, condition: Header) -> Rule {
        if let Kind::Match { header, .. } = &mut self.kind {
            *header = Some(condition);
        }
        self
    }

    /// The rule's name, when it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether the rule looks at error codes (and so at the body).
    pub(crate) fn reads_codes(&self) -> bool {
        match &self.kind {
            Kind::Match {
                codes, messages, ..
            } => !codes.is_empty() || !messages.is_empty(),
            Kind::Custom(_) => true,
        }
    }

    /// The statuses whose success bodies the rule reads: those it names,
    /// when it also names codes and yields a failure. A function rule reads
    /// no success body.
    pub(crate) fn success_statuses(&self) -> &[u16] {
        match &self.kind {
            Kind::Match {
                statuses,
                codes,
                messages,
                class,
                ..
            } if (!codes.is_empty() || !messages.is_empty()) && !class.passes_through() => statuses,
            _ => &[],
        }
    }

    /// Whether the rule can yield `class`; a function rule may yield any.
    pub(crate) fn may_yield(&self, wanted: StatusClass) -> bool {
        match &self.kind {
            Kind::Match { class, .. } => *class == wanted,
            Kind::Custom(_) => true,
        }
    }

    /// The rule's class for `input`, when it matches.
    pub(crate) fn decide(&self, input: &RuleInput<'_>) -> Option<StatusClass> {
        match &self.kind {
            Kind::Match {
                statuses,
                codes,
                messages,
                header,
                class,
            } => {
                let status = statuses.is_empty() || statuses.contains(&input.status.as_u16());
                let header = header.as_ref().is_none_or(|h| h.matches(input.headers));
                let code = codes.is_empty()
                    || input
                        .codes
                        .is_some_and(|got| got.iter().any(|c| codes.iter().any(|w| w == c)));
                let message = messages.is_empty()
                    || input.messages.iter().any(|got| {
                        let got = got.to_lowercase();
                        messages.iter().any(|wanted| got.contains(wanted.as_str()))
                    });
                (status && header && code && message).then_some(*class)
            }
            Kind::Custom(decide) => {
                decide(input).filter(|class| input.codes.is_none() || !class.passes_through())
            }
        }
    }

    /// The first thing wrong with the rule at `key` (such as
    /// `classify.rules.2`).
    pub(crate) fn check(&self, key: &str) -> Result<(), SettingsError> {
        let Kind::Match {
            statuses,
            codes,
            messages,
            header,
            class,
        } = &self.kind
        else {
            return Ok(());
        };
        if statuses.is_empty() && codes.is_empty() && messages.is_empty() && header.is_none() {
            return Err(SettingsError::new(
                key.to_owned(),
                "a rule must name at least one of status, code, message and header: one without would take every response",
            ));
        }
        if let Some(index) = messages.iter().position(String::is_empty) {
            return Err(SettingsError::new(
                format!("{key}.message"),
                "an empty message in a rule would match every error: expected words the message contains",
            )
            .at_index(index));
        }
        if !messages.is_empty() && class.passes_through() {
            return Err(SettingsError::new(
                format!("{key}.class"),
                format!(
                    "a rule with error messages cannot yield {class}: messages are read from the body of a failure, which is not handed back; expected retryable, terminal or unsupported"
                ),
            ));
        }
        for (index, &status) in statuses.iter().enumerate() {
            if !(FIRST_STATUS..=LAST_STATUS).contains(&status) {
                return Err(SettingsError::new(
                    format!("{key}.status"),
                    format!(
                        "invalid status {status} in a rule: expected a status code from {FIRST_STATUS} to {LAST_STATUS}"
                    ),
                )
                .at_index(index));
            }
        }
        if let Some(Header::Invalid(text)) = header {
            return Err(SettingsError::new(
                format!("{key}.header"),
                format!(
                    "invalid header {text:?} in a rule: expected \"Name\", \"Name: value\" or \"Name: value | value\" with a valid name and values"
                ),
            ));
        }
        if !codes.is_empty() && class.passes_through() {
            return Err(SettingsError::new(
                format!("{key}.class"),
                format!(
                    "a rule with error codes cannot yield {class}: codes are read from the body of a failure, which is not handed back; expected retryable, terminal or unsupported"
                ),
            ));
        }
        Ok(())
    }
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        self.name == other.name
            && match (&self.kind, &other.kind) {
                (
                    Kind::Match {
                        statuses,
                        codes,
                        messages,
                        header,
                        class,
                    },
                    Kind::Match {
                        statuses: s,
                        codes: c,
                        messages: m,
                        header: h,
                        class: k,
                    },
                ) => statuses == s && codes == c && messages == m && header == h && class == k,
                (Kind::Custom(a), Kind::Custom(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Eq for Rule {}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Rule");
        if let Some(name) = &self.name {
            out.field("name", name);
        }
        match &self.kind {
            Kind::Match {
                statuses,
                codes,
                messages,
                header,
                class,
            } => {
                if !statuses.is_empty() {
                    out.field("status", statuses);
                }
                if !codes.is_empty() {
                    out.field("code", codes);
                }
                if !messages.is_empty() {
                    out.field("message", messages);
                }
                if let Some(header @ Header::Parsed(..)) = header {
                    out.field("header", &format_args!("{header}"));
                }
                out.field("class", class);
            }
            Kind::Custom(_) => {
                out.field("custom", &true);
            }
        }
        out.finish()
    }
}

/// Which class a response takes, and what decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    class: StatusClass,
    rule: Option<usize>,
}

impl Decision {
    pub(crate) fn new(class: StatusClass, rule: Option<usize>) -> Self {
        Decision { class, rule }
    }

    /// The class.
    pub fn class(&self) -> StatusClass {
        self.class
    }

    /// The index of the rule that decided, or `None` for the status table.
    pub fn rule(&self) -> Option<usize> {
        self.rule
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Classifier;

    fn classifier() -> Classifier {
        let mut fallback = [StatusClass::Terminal; 5];
        fallback[1] = StatusClass::Success;
        fallback[2] = StatusClass::Success;
        fallback[4] = StatusClass::Retryable;
        Classifier::new(fallback, [(202, StatusClass::Pollable)]).with_rules(vec![
            Rule::new(StatusClass::Retryable)
                .status([400, 409])
                .code(["Throttled"]),
            Rule::new(StatusClass::Terminal)
                .status([200])
                .header("x-status", "failed"),
            Rule::new(StatusClass::Unsupported).code(["Gone"]),
            // A function that answers success to everything it sees with
            // codes: passed over once the body is read.
            Rule::custom(|input| {
                if input.codes().is_some() {
                    Some(StatusClass::Success)
                } else {
                    (input.status() == 418).then_some(StatusClass::Retryable)
                }
            }),
            Rule::new(StatusClass::Pollable).header("x-status", "running"),
        ])
    }

    #[test]
    fn message_conditions_match_words_in_any_case_once_the_body_is_read() {
        let secondary = Rule::new(StatusClass::Retryable)
            .status([403])
            .message(["Secondary Rate Limit", "abuse detection"]);
        let none = HeaderMap::new();
        let head = RuleInput::new(StatusCode::FORBIDDEN, &none);
        assert_eq!(secondary.decide(&head), None, "the body is not read yet");
        let codes: [&str; 0] = [];
        for (messages, expected) in [
            (
                &["You have exceeded a secondary rate limit."][..],
                Some(StatusClass::Retryable),
            ),
            (
                &["Resource not accessible", "ABUSE DETECTION mechanism"][..],
                Some(StatusClass::Retryable),
            ),
            (&["Bad credentials"][..], None),
            (&[][..], None),
        ] {
            let read = head.with_codes(&codes).with_messages(messages);
            assert_eq!(secondary.decide(&read), expected, "{messages:?}");
        }
        assert!(secondary.reads_codes(), "a message is in the body");
        assert_eq!(secondary.success_statuses(), [403]);
        // Checked like a code.
        let empty = Rule::new(StatusClass::Retryable).message([""]);
        let error = empty.check("classify.rules.0").unwrap_err().to_string();
        assert!(error.contains("empty message"), "{error}");
        let success = Rule::new(StatusClass::Success)
            .status([200])
            .message(["ok"]);
        let error = success.check("classify.rules.0").unwrap_err().to_string();
        assert!(error.contains("cannot yield success"), "{error}");
        let alone = Rule::new(StatusClass::Terminal).message(["denied"]);
        assert!(
            alone.check("classify.rules.0").is_ok(),
            "a message alone names a condition"
        );
    }

    #[test]
    fn header_conditions() {
        let present = Rule::new(StatusClass::Retryable).header_present("Retry-After");
        let exact = Rule::new(StatusClass::Retryable).header("x-status", "failed");
        let any = Rule::new(StatusClass::Retryable).header_any_of("x-status", ["failed", "*"]);
        // rule, headers, matches
        type Row<'r> = (&'r Rule, &'static [(&'static str, &'static str)], bool);
        let rows: &[Row<'_>] = &[
            (&present, &[("retry-after", "1")], true),
            (&present, &[("retry-after", "")], true),
            (&present, &[("x-status", "failed")], false),
            (&present, &[], false),
            (&exact, &[("x-status", "failed")], true),
            (&exact, &[("x-status", "failed ")], false),
            (
                &exact,
                &[("x-status", "other"), ("x-status", "failed")],
                true,
            ),
            (&any, &[("x-status", "*")], true),
            (&any, &[("x-status", "failed")], true),
            (&any, &[("x-status", "running")], false),
        ];
        for (rule, pairs, matches) in rows {
            let mut headers = HeaderMap::new();
            for (name, value) in *pairs {
                headers.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            let input = RuleInput::new(StatusCode::OK, &headers);
            assert_eq!(
                rule.decide(&input).is_some(),
                *matches,
                "{rule:?} {pairs:?}"
            );
            assert!(rule.check("r").is_ok());
        }
        assert_eq!(
            format!("{any:?}"),
            r#"Rule { header: x-status: "failed" | "*", class: Retryable }"#
        );
        assert_eq!(
            format!("{present:?}"),
            "Rule { header: retry-after, class: Retryable }"
        );
        for bad in [
            Rule::new(StatusClass::Terminal).header_present("bad name"),
            Rule::new(StatusClass::Terminal).header_any_of("x", []),
            Rule::new(StatusClass::Terminal).header("x", "line\nbreak"),
        ] {
            let error = bad.check("classify.rules.0").unwrap_err();
            assert_eq!(error.key(), "classify.rules.0.header", "{bad:?}");
        }
    }

    #[test]
    fn every_response_lands_in_one_class_and_a_read_body_never_passes_through() {
        let classifier = classifier();
        let codes: [&[&str]; 4] = [&[], &["Throttled"], &["Other", "Gone"], &["Other"]];
        let mut decided_by_rule = 0;
        for status in 100..=599u16 {
            let status = StatusCode::from_u16(status).unwrap();
            for header in [None, Some("failed"), Some("running")] {
                let mut headers = HeaderMap::new();
                if let Some(value) = header {
                    headers.insert("x-status", HeaderValue::from_static(value));
                }
                let head = classifier.decide(&RuleInput::new(status, &headers));
                assert_eq!(head, classifier.decide(&RuleInput::new(status, &headers)));
                assert_eq!(
                    head.class(),
                    classifier.classify_head(status, &headers),
                    "{status}"
                );
                if head.class().passes_through() {
                    continue;
                }
                for codes in codes {
                    let read =
                        classifier.decide(&RuleInput::new(status, &headers).with_codes(codes));
                    assert!(
                        !read.class().passes_through(),
                        "{status} {header:?} {codes:?}: {read:?}"
                    );
                    decided_by_rule += usize::from(read.rule().is_some());
                    if codes.is_empty() || codes == ["Other"] {
                        assert_eq!(read, head, "no code rule matched: {status} {header:?}");
                    }
                }
            }
        }
        // The code rules did decide: 400 and 409 Throttled, and every failure
        // that said Gone.
        assert!(decided_by_rule > 500, "{decided_by_rule}");
        let none = HeaderMap::new();
        let read = classifier
            .decide(&RuleInput::new(StatusCode::CONFLICT, &none).with_codes(&["Throttled"]));
        assert_eq!(
            (read.class(), read.rule()),
            (StatusClass::Retryable, Some(0))
        );
        let head = classifier.decide(&RuleInput::new(StatusCode::IM_A_TEAPOT, &none));
        assert_eq!(
            (head.class(), head.rule()),
            (StatusClass::Retryable, Some(3))
        );
        let mut running = HeaderMap::new();
        running.insert("x-status", HeaderValue::from_static("running"));
        let head = classifier.decide(&RuleInput::new(StatusCode::OK, &running));
        assert_eq!(
            (head.class(), head.rule()),
            (StatusClass::Pollable, Some(4))
        );
    }
}
