//! The error-body parsers, in every format: any bytes, no panic; every error
//! carries a field, and only a problem detail keeps its object.
//!
//! The first byte chooses the format, the `Content-Type` and the pointers;
//! the rest is the body.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tower_rebound::classify::{ErrorBodyFormat, ErrorBodySettings, ErrorFields, parse_error_body};

/// Pointers of the shapes APIs use: the root, an envelope, an index and
/// escaped keys.
const POINTERS: [(&str, &str, &str); 4] = [
    ("", "/code", "/message"),
    ("/error", "/code", "/status"),
    ("/errors/0", "/c~1d", "/m~0n"),
    ("/data/errors", "/0/code", "/detail/text"),
];

fn settings(choice: u8) -> ErrorBodySettings {
    let (errors, code, message) = POINTERS[usize::from(choice >> 2) % POINTERS.len()];
    let fields = ErrorFields::builder()
        .errors(errors)
        .code(code)
        .message(message)
        .build()
        .expect("valid pointers");
    let builder = ErrorBodySettings::builder();
    match choice % 4 {
        0 => builder.format(ErrorBodyFormat::Connio),
        1 => builder.format(ErrorBodyFormat::Problem),
        2 => builder.format(ErrorBodyFormat::Fields).fields(fields),
        _ if choice & 0x10 == 0 => builder.format(ErrorBodyFormat::Auto),
        _ => builder.format(ErrorBodyFormat::Auto).fields(fields),
    }
    .build()
    .expect("valid settings")
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let settings = settings(choice);
    let content_type = (choice & 0x20 != 0)
        .then(|| HeaderValue::from_static("application/problem+json; charset=utf-8"));
    let problem = settings.format() == ErrorBodyFormat::Problem
        || (settings.format() == ErrorBodyFormat::Auto && content_type.is_some());
    for error in parse_error_body(&settings, content_type.as_ref(), body) {
        assert!(
            error.code().is_some()
                || error.cause().is_some()
                || error.message().is_some()
                || error.more_info_url().is_some()
        );
        assert_eq!(error.members().is_some(), problem);
    }
});
