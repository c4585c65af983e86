//! The error-body parser: any bytes, no panic; every error carries a field.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    for error in rebound::classify::parse_api_errors(body) {
        assert!(
            error.code().is_some()
                || error.cause().is_some()
                || error.message().is_some()
                || error.more_info_url().is_some()
        );
    }
});
