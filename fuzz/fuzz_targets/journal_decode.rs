//! Journal record decoding: any bytes decode to a record, an unknown version or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(anycastd_journal::Entry::Record(record)) = anycastd_journal::codec::decode(1, data) {
        // What decodes re-encodes (in the current version) to a value that decodes to the
        // same record.
        let bytes = anycastd_journal::codec::encode(record.at_ms, &record.event).unwrap();
        match anycastd_journal::codec::decode(1, &bytes).unwrap() {
            anycastd_journal::Entry::Record(again) => {
                assert_eq!((again.at_ms, again.event), (record.at_ms, record.event));
            }
            other => panic!("{other:?}"),
        }
    }
    let _ = anycastd_journal::codec::decode_last(data);
});
