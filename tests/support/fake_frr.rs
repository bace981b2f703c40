//! FRR played by `tests/support/fake_vtysh.py` (the `network` lines kept in a JSON file), for
//! tests about the daemon's own behaviour where a real FRR adds nothing but time.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The fake vtysh, executable (made so only when it is not: a user who does not own the
/// checkout cannot change its mode).
pub fn fake_vtysh() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_vtysh.py");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    if mode & 0o555 != 0o555 {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

/// `DIR/config.toml`: dns (203.0.113.53, 2001:db8::53) and ntp (203.0.113.123 in VRF 123),
/// one check each at `url` every 100 ms, through `vtysh` with its state in `DIR/frr.json`.
pub fn fake_frr_config(dir: &Path, url: &str, vtysh: &Path, extra: &str) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[journal]
path = {journal:?}
[control]
socket = {socket:?}
[frrouting]
vtysh_args = ["--state", {state:?}]
{extra}
[services.dns]
prefixes.frrouting = [{{ prefix = "203.0.113.53", vtysh = {vtysh:?} }}, {{ prefix = "2001:db8::53", vtysh = {vtysh:?} }}]
checks.cabourotte = [{{ name = "dns", url = "{url}", interval = "100ms" }}]
[services.ntp]
prefixes.frrouting = [{{ prefix = "203.0.113.123", vrf = "123", vtysh = {vtysh:?} }}]
checks.cabourotte = [{{ name = "ntp", url = "{url}", interval = "100ms" }}]
"#,
            journal = dir.join("journal").display().to_string(),
            socket = dir.join("ctl.sock").display().to_string(),
            state = dir.join("frr.json").display().to_string(),
            vtysh = vtysh.display().to_string(),
        ),
    )
    .unwrap();
    config
}

/// The `network` lines of the fake FRR in `DIR/frr.json`, as `vrf:prefix`.
pub fn networks(dir: &Path) -> Vec<String> {
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("frr.json")).unwrap_or_else(|_| "{}".into()),
    )
    .unwrap();
    let mut nets: Vec<String> = state["networks"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(vrf, list)| {
            list.as_array()
                .unwrap()
                .iter()
                .map(move |n| format!("{vrf}:{}", n.as_str().unwrap()))
        })
        .collect();
    nets.sort();
    nets
}
