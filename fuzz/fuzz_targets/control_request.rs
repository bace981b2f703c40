//! The control socket's request parser: any line is a request or an error text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = anycastd::control::parse_request(line);
    }
});
