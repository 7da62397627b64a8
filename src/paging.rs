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

/// One page's request: the position its token names under `filter`, and its size.
#[derive(Clone, Debug)]
pub struct Page {
    filter: String,
    after: Option<(DateTime<Utc>, Uuid)>,
    size: usize,
}

impl Page {
    /// The page `token` asks for under `filter` (the first without one); `None` when
    /// the token is not one of ours or was made for other filters.
    pub fn new(filter: String, size: usize, token: Option<&str>) -> Option<Self> {
        let after = match token {
            Some(token) => Some(decode(token, &filter)?),
            None => None,
        };
        Some(Self {
            filter,
            after,
            size,
        })
    }

    /// The last row of the previous page, to read after.
    pub fn after(&self) -> Option<(DateTime<Utc>, Uuid)> {
        self.after
    }

    /// How many rows to read: one more than the page, to know whether another follows.
    pub fn limit(&self) -> i64 {
        self.size as i64 + 1
    }

    /// Cuts `found` (read with [`Page::limit`]) to the page, and returns the token of
    /// the next page if that extra row was there.
    pub fn finish<T>(
        &self,
        found: &mut Vec<T>,
        position: impl Fn(&T) -> (DateTime<Utc>, Uuid),
    ) -> Option<String> {
        finish_page(found, self.size, &self.filter, position)
    }
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

    #[test]
    fn a_page_reads_one_row_more_and_hands_a_token_only_when_it_was_there() {
        let rows: Vec<(DateTime<Utc>, Uuid)> = (0..3)
            .map(|i| {
                (
                    DateTime::from_timestamp_micros(1_700_000_000_000_000 + i).unwrap(),
                    Uuid::now_v7(),
                )
            })
            .collect();
        let page = Page::new("f".into(), 2, None).unwrap();
        assert_eq!((page.after(), page.limit()), (None, 3));
        let mut found = rows.clone();
        let token = page.finish(&mut found, |row| *row).unwrap();
        assert_eq!(found, rows[..2]);
        let next = Page::new("f".into(), 2, Some(&token)).unwrap();
        assert_eq!(next.after(), Some(rows[1]));
        assert!(Page::new("g".into(), 2, Some(&token)).is_none());
        let mut last = rows[2..].to_vec();
        assert_eq!(next.finish(&mut last, |row| *row), None);
    }
}
