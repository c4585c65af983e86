//! The policy loader: any text, a policy or an error with a location, no
//! panic; loading the same text twice gives the same answer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match tower_rebound::Policy::from_toml_str(text) {
        Ok(policy) => {
            assert!((1..=10).contains(&policy.max_attempts()));
            assert!(tower_rebound::Policy::from_toml_str(text).is_ok());
        }
        Err(error) => {
            let again = tower_rebound::Policy::from_toml_str(text).unwrap_err();
            assert_eq!(error, again);
        }
    }
});
