//! Stream cursors come from clients: any text parses or is refused without a
//! panic, and every cursor ramp gives out parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ramp::forms::Cursor;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(cursor) = Cursor::parse(text)
    {
        assert_eq!(Cursor::parse(&cursor.encode()), Some(cursor));
    }
    if data.len() >= 16 {
        let tx = i64::from_le_bytes(data[..8].try_into().unwrap());
        let seq = i64::from_le_bytes(data[8..16].try_into().unwrap());
        let cursor = Cursor((tx, seq));
        assert_eq!(Cursor::parse(&cursor.encode()), Some(cursor));
    }
});
