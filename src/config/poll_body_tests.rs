//! Issue 24 §2's keys in files: where a `200` status body says how an
//! operation is going (`poll.status_pointer` and its lists,
//! `poll.done_pointer`, `poll.error_pointer`, `poll.max_body_bytes`).

use super::*;

/// Loads `text` expecting an error at `line`:`column` whose message contains
/// `needle`.
fn assert_error(text: &str, line: usize, column: usize, needle: &str) {
    let error = Policy::from_toml_str(text).expect_err(text);
    assert_eq!(
        (error.line(), error.column()),
        (Some(line), Some(column)),
        "{error}\n{text}"
    );
    assert!(error.message().contains(needle), "{error} lacks {needle:?}");
}

#[test]
fn azure_and_google_keys_parse() {
    let azure = Policy::from_toml_str(
        "[poll]\nlocation_headers = [\"azure-asyncoperation\", \"location\"]\n\
         status_pointer = \"/status\"\nrunning = [\"InProgress\", \"NotStarted\"]\n\
         succeeded = [\"Succeeded\"]\nfailed = [\"Failed\"]\ncanceled = [\"Canceled\"]\n\
         max_body_bytes = 4096\n",
    )
    .unwrap();
    let settings = azure.poll_settings();
    let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let expected = crate::poll::Completion::status(
        "/status",
        list(&["InProgress", "NotStarted"]),
        list(&["Succeeded"]),
        list(&["Failed"]),
        list(&["Canceled"]),
        "/error",
    )
    .unwrap();
    assert_eq!(settings.completion(), Some(&expected));
    assert_eq!(settings.max_body_bytes(), 4096);

    let google =
        Policy::from_toml_str("[poll]\ndone_pointer = \"/done\"\nerror_pointer = \"/err\"\n")
            .unwrap();
    let expected = crate::poll::Completion::done("/done", "/err").unwrap();
    assert_eq!(google.poll_settings().completion(), Some(&expected));
    assert_eq!(google.poll_settings().max_body_bytes(), 64 * 1024);
}

#[test]
fn google_s_status_url_from_the_first_answer_parses() {
    let policy = Policy::from_toml_str(
        "[poll]\ndone_pointer = \"/done\"\nstatus_url = \"{origin}/{first_segment}/{name}\"\n",
    )
    .unwrap();
    let expected = crate::poll::Completion::done("/done", "/error")
        .unwrap()
        .with_status_url("{origin}/{first_segment}/{name}", "/name")
        .unwrap();
    assert_eq!(policy.poll_settings().completion(), Some(&expected));
    assert_error(
        "[poll]\nstatus_url = \"{origin}/{name}\"\n",
        2,
        14,
        "poll.status_url needs poll.status_pointer or poll.done_pointer",
    );
    assert_error(
        "[poll]\ndone_pointer = \"/done\"\nstatus_url = \"{origin}/{id}\"\n",
        3,
        14,
        "unknown field {id} in poll.status_url",
    );
    assert_error(
        "[poll]\ndone_pointer = \"/done\"\nname_pointer = \"/name\"\n",
        3,
        16,
        "poll.name_pointer needs poll.status_url",
    );
}

#[test]
fn without_a_rule_no_body_is_read() {
    for name in ["standard", "connio", "none"] {
        let policy = Policy::preset(name).unwrap();
        assert_eq!(policy.poll_settings().completion(), None, "{name}");
    }
}

#[test]
fn mistakes_point_at_their_key() {
    assert_error(
        "[poll]\nstatus_pointer = \"status\"\nsucceeded = [\"Succeeded\"]\n",
        2,
        18,
        "invalid JSON pointer \"status\" in poll.status_pointer",
    );
    assert_error(
        "[poll]\nstatus_pointer = \"/status\"\n",
        2,
        18,
        "poll.status_pointer needs poll.succeeded",
    );
    assert_error(
        "[poll]\nstatus_pointer = \"/status\"\nsucceeded = [\"S\"]\ndone_pointer = \"/done\"\n",
        4,
        16,
        "expected one of them",
    );
    assert_error(
        "[poll]\ndone_pointer = \"/done\"\nfailed = [\"Failed\"]\n",
        3,
        10,
        "poll.failed needs poll.status_pointer",
    );
    assert_error(
        "[poll]\nerror_pointer = \"/error\"\n",
        2,
        17,
        "needs poll.status_pointer or poll.done_pointer",
    );
    assert_error(
        "[poll]\ndone_pointer = \"/done\"\nmax_body_bytes = 0\n",
        3,
        18,
        "poll.max_body_bytes is out of bounds",
    );
}

#[test]
fn body_headers_name_the_status_urls_a_rule_reads() {
    let policy = Policy::from_toml_str(
        "[poll]\nlocation_headers = [\"Azure-AsyncOperation\", \"Location\"]\n\
         status_pointer = \"/status\"\nsucceeded = [\"Succeeded\"]\n\
         body_headers = [\"Azure-AsyncOperation\"]\n",
    )
    .unwrap();
    let azure = http::HeaderName::from_static("azure-asyncoperation");
    assert_eq!(policy.poll_settings().body_headers(), Some(&[azure][..]));
    // Every header's by default, as before the key.
    let plain = Policy::from_toml_str("[poll]\ndone_pointer = \"/done\"\n").unwrap();
    assert_eq!(plain.poll_settings().body_headers(), None);
    assert_error(
        "[poll]\nbody_headers = [\"Azure-AsyncOperation\"]\n",
        2,
        16,
        "poll.body_headers needs poll.status_pointer or poll.done_pointer",
    );
    assert_error(
        "[poll]\ndone_pointer = \"/done\"\nbody_headers = [\"ok\", \"bad header\"]\n",
        3,
        23,
        "invalid header name \"bad header\" in poll.body_headers",
    );
}
