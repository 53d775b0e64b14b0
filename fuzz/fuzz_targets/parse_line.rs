//! The parser is total: any bytes give an entry, without panicking, and
//! rendering every field of it works too.
#![no_main]

use exim_pilot::parse::{Kind, parse_line, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let entry = parse_line(data);
    assert!(Kind::ALL.contains(&entry.kind()));
    let rendered = render(&entry);
    assert!(rendered.starts_with(entry.kind().name()));
});
