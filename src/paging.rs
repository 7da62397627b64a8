//! Page tokens: opaque to clients, bound to the filters they were made for, so a
//! token reused with other filters is refused rather than silently misread.

use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A token for the page after the row at (`time`, `id`) under `filter`.
pub fn encode((time, id): (DateTime<Utc>, Uuid), filter: &str) -> String {
    ENGINE.encode(format!(
        "{}|{}|{:016x}",
        time.timestamp_micros(),
        id,
        fingerprint(filter)
    ))
}

/// The position in `token`, if it is one of ours and was made for `filter`.
pub fn decode(token: &str, filter: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let text = String::from_utf8(ENGINE.decode(token).ok()?).ok()?;
    let mut parts = text.split('|');
    let micros: i64 = parts.next()?.parse().ok()?;
    let id = Uuid::parse_str(parts.next()?).ok()?;
    let print = u64::from_str_radix(parts.next()?, 16).ok()?;
    if print != fingerprint(filter) || parts.next().is_some() {
        return None;
    }
    Some((DateTime::from_timestamp_micros(micros)?, id))
}

/// Cuts `found` — fetched with one row more than `page_size` — to the page, and
/// returns the token of the next page if that extra row was there.
pub fn finish_page<T>(
    found: &mut Vec<T>,
    page_size: usize,
    filter: &str,
    position: impl Fn(&T) -> (DateTime<Utc>, Uuid),
) -> Option<String> {
    if found.len() <= page_size {
        return None;
    }
    found.truncate(page_size);
    found.last().map(|last| encode(position(last), filter))
}

/// FNV-1a: stable across releases and replicas (unlike std's hasher).
fn fingerprint(filter: &str) -> u64 {
    filter.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_under_its_filter_only() {
        let position = (
            DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            Uuid::now_v7(),
        );
        let token = encode(position, "a");
        assert_eq!(decode(&token, "a"), Some(position));
        assert_eq!(decode(&token, "b"), None);
        assert_eq!(decode("garbage", "a"), None);
    }
}
