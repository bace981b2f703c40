//! Cabourotte responses: any status and body is an observation or an unknown route.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, UNIX_EPOCH};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = 100 + u16::from(data[0]) * 2;
    let max_age = (data[1] & 1 == 1).then(|| Duration::from_secs(u64::from(data[1])));
    let _ = anycastd::checks::cabourotte::classify(status, &data[2..], max_age, UNIX_EPOCH + Duration::from_secs(1_800_000_000));
});
