//! The status URL resolver and origin check: any header bytes, no panic, and
//! nothing accepted outside the request's origin or with userinfo.
#![no_main]

use http::Uri;
use libfuzzer_sys::fuzz_target;
use tower_rebound::poll::{Origin, Target, resolve_status_url};

fuzz_target!(|location: &[u8]| {
    let base: Uri = "https://api.example:8443/v3/devices/7?x=1".parse().unwrap();
    if let Ok(target) = resolve_status_url(&base, &base, location, &[]) {
        assert!(matches!(target, Target::SameOrigin(_)));
        assert_eq!(Origin::of(target.uri()), Origin::of(&base));
        assert!(!target.uri().authority().is_some_and(|a| a.as_str().contains('@')));
    }
});
