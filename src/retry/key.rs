//! Idempotency keys: unguessable, from the operating system's randomness.
//!
//! A key tells the server that two requests are the same write. Anyone who
//! can guess a key another client will send can make the server drop that
//! client's write as a duplicate, so keys never come from the seedable jitter
//! generator (whose next output follows from one observed output): each is
//! 122 bits drawn from the operating system (`getrandom`).

use http::HeaderValue;

/// A new random (version 4, RFC 9562) UUID as a header value, or `None` when
/// the operating system has no randomness to give.
pub(crate) fn idempotency_key() -> Option<HeaderValue> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(uuid_v4(bytes))
}

/// The UUID text of 16 random bytes, with the version and variant bits set.
fn uuid_v4(mut bytes: [u8; 16]) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = [0u8; 36];
    let mut at = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text[at] = b'-';
            at += 1;
        }
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0xf)];
        at += 2;
    }
    HeaderValue::from_bytes(&text).expect("hex digits and dashes are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_have_the_version_4_shape() {
        let bytes = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210_u128.to_be_bytes();
        assert_eq!(
            uuid_v4(bytes).to_str().unwrap(),
            "01234567-89ab-4def-bedc-ba9876543210"
        );
        assert_eq!(
            uuid_v4([0xff; 16]).to_str().unwrap(),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
    }

    #[test]
    fn keys_do_not_repeat() {
        let keys: std::collections::HashSet<_> = (0..1000)
            .map(|_| idempotency_key().expect("the test machine has randomness"))
            .collect();
        assert_eq!(keys.len(), 1000);
    }
}
