//! The parsers of vtysh output: `show running-config` text and `show bgp ... json`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let config = anycastd::routing::frr::vtysh::RunningConfig::parse(&text);
    for instance in config.instances.values() {
        assert!(instance.networks.len() <= text.len());
    }
    let _ = anycastd::routing::frr::valid_routes(&text);
    let _ = anycastd::routing::frr::established_peers(&text);
});
