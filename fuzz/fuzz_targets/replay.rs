//! Replay of arbitrary records over arbitrary windows: never a panic. The input is a window
//! (since, until, now, what-if rise and fall: 27 bytes) and then records, each a 2-byte
//! length and a journal value (version byte and body), as `history --json` cannot produce but
//! a damaged or hand-edited journal can.
#![no_main]
use libfuzzer_sys::fuzz_target;

fn i64_at(data: &[u8], at: usize) -> Option<i64> {
    data.get(at..at + 8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 27 {
        return;
    }
    let option = |flag: u8, value: Option<i64>| if flag & 1 == 1 { value } else { None };
    let since = option(data[24], i64_at(data, 0));
    let until = option(data[24] >> 1, i64_at(data, 8));
    let now = option(data[24] >> 2, i64_at(data, 16));
    let what_if = anycastd::audit::replay::WhatIf {
        rise: (data[25] > 0).then_some(u32::from(data[25])),
        fall: (data[26] > 0).then_some(u32::from(data[26])),
        damping: None,
        // Bit 3 of the flags: the what-if makes check "dns" (a shadow check or not) gate.
        with_shadow: if data[24] & 8 != 0 {
            vec!["dns".to_owned()]
        } else {
            Vec::new()
        },
        ..anycastd::audit::replay::WhatIf::default()
    };
    let mut records = Vec::new();
    let mut rest = &data[27..];
    let mut seq = 1;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let Some(value) = rest.get(2..2 + len) else {
            break;
        };
        if let Ok(anycastd_journal::Entry::Record(record)) =
            anycastd_journal::codec::decode(seq, value)
        {
            records.push(record);
        }
        seq += 1;
        rest = &rest[2 + len..];
    }
    for service in ["dns", "ntp"] {
        let report = anycastd::audit::replay::replay(service, &records, since, until, now, &what_if);
        let _ = anycastd::audit::replay::render_text(&report);
    }
});
