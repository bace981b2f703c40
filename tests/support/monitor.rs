//! A streaming monitor at the BGP peer (`gobgp monitor global rib -j`, IPv4 and IPv6): it sees
//! every UPDATE as it arrives, so "the peer never saw a withdrawal" can be shown, which polling
//! cannot do.

use super::peer::PeerPath;
use super::testbed::Testbed;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running monitor writing to files.
pub struct Monitor {
    children: Vec<Child>,
    files: Vec<PathBuf>,
}

impl Monitor {
    /// Start monitoring the peer of `tb`, writing into `dir`.
    pub fn start(tb: &Testbed, dir: &Path) -> Monitor {
        Self::start_on(tb, dir, &["global", "rib"])
    }

    /// Every path the peer receives from any neighbor (`gobgp monitor adj-in`): a refresh
    /// of a session shows as every route received again.
    pub fn adj_in(tb: &Testbed, dir: &Path) -> Monitor {
        Self::start_on(tb, dir, &["adj-in"])
    }

    /// Every path event so far: (prefix, withdrawal), in the order received per family.
    pub fn events(&self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        for file in &self.files {
            for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
                let Ok(paths) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                for p in paths.as_array().into_iter().flatten() {
                    out.push((
                        p["nlri"]["prefix"].as_str().unwrap_or("?").to_owned(),
                        p["withdrawal"].as_bool() == Some(true),
                    ));
                }
            }
        }
        out
    }

    /// Every announcement of `prefix` the peer received so far (withdrawals left out), each
    /// with the path it carried, in the order received: "every update carried 65535:0" can be
    /// asserted on these.
    pub fn announcements_of(&self, prefix: &str) -> Vec<PeerPath> {
        let mut out = Vec::new();
        for file in &self.files {
            for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
                let Ok(paths) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                for p in paths.as_array().into_iter().flatten() {
                    if p["nlri"]["prefix"].as_str() == Some(prefix)
                        && p["withdrawal"].as_bool() != Some(true)
                    {
                        out.push(PeerPath::from_json(p));
                    }
                }
            }
        }
        out
    }

    fn start_on(tb: &Testbed, dir: &Path, what: &[&str]) -> Monitor {
        let mut children = Vec::new();
        let mut files = Vec::new();
        for afi in ["ipv4", "ipv6"] {
            let file = dir.join(format!("monitor-{}-{afi}.jsonl", what.join("-")));
            let peer_ns = format!("{}-peer", tb.name);
            let mut args = vec!["netns", "exec", &peer_ns, "gobgp", "monitor"];
            args.extend_from_slice(what);
            args.extend_from_slice(&["-a", afi, "-j"]);
            let child = Command::new("ip")
                .args(&args)
                .stdout(std::fs::File::create(&file).expect("monitor file"))
                .stderr(Stdio::null())
                .spawn()
                .expect("start gobgp monitor");
            children.push(child);
            files.push(file);
        }
        // Let the monitors subscribe before anything happens.
        std::thread::sleep(Duration::from_millis(500));
        Monitor { children, files }
    }

    /// Prefixes the peer saw withdrawn so far, each once, sorted (gobgp may report one
    /// withdrawal in more than one message).
    pub fn withdrawals(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .events()
            .into_iter()
            .filter(|(_, withdrawal)| *withdrawal)
            .map(|(prefix, _)| prefix)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
