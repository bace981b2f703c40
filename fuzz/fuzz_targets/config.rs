//! The config parser and validator: any text gives a config or problems, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match anycastd::config::parse(text, &anycastd::checks::REGISTRY) {
            Ok(config) => assert!(!config.services.is_empty()),
            Err(problems) => assert!(!problems.is_empty()),
        }
    }
});
