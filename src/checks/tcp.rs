//! `checks.tcp`: passes when a connection to `address` is accepted within the timeout; the
//! connection is closed at once, nothing is sent. A host name is resolved at every poll and
//! its addresses are tried in order. A plain item is the address.

use super::{dns_wire, BoxFuture, Gate, Kind, Kinds, Observation, Probe};
use crate::config::{Check, KindItem};
use std::sync::Arc;
use std::time::Duration;

/// `checks.tcp`: the address connected to.
#[derive(Debug, Clone, PartialEq)]
pub struct Tcp {
    /// `host:port`.
    pub address: String,
}

/// The kind's table as it is written, for `anycastd schema` (described, never built).
mod schema {
    #![allow(dead_code)]
    crate::config::schema::check_table!(Tcp { address: String });
}

impl Kind for Tcp {
    const NAME: &'static str = "tcp";
    const LABEL: &'static str = "TCP";
    type Schema = schema::Tcp;

    fn parse(item: &mut KindItem<'_, '_, '_>) -> Option<(Tcp, String)> {
        let (node, path) = item.required("address")?;
        let address = item.string(node, &path)?;
        if !is_host_port(&address) {
            item.problem(
                node,
                &path,
                format!("{address:?} is not host:port, like \"127.0.0.1:123\" or \"[::1]:53\""),
            );
            return None;
        }
        Some((
            Tcp {
                address: address.clone(),
            },
            address,
        ))
    }

    fn identity(&self) -> String {
        self.address.clone()
    }

    fn probe(&self, service: &str, check: &Check, _: &Kinds) -> Box<dyn Probe> {
        Box::new(TcpProbe::new(
            service,
            &check.name,
            &self.address,
            check.timeout,
        ))
    }
}

/// `host:port` (a name, an IPv4 address or a bracketed IPv6 address).
fn is_host_port(address: &str) -> bool {
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty() && !host.contains(':') && dns_wire::check_name(host).is_ok()
    };
    port_ok && host_ok
}

/// One TCP check.
pub struct TcpProbe {
    target: String,
    address: String,
    gate: Arc<Gate>,
    timeout: Duration,
}

impl TcpProbe {
    /// The probe of check `check` of service `service`, connecting to `address`.
    pub fn new(service: &str, check: &str, address: &str, timeout: Duration) -> TcpProbe {
        TcpProbe {
            target: format!("tcp:{service}/{check}"),
            address: address.to_owned(),
            gate: Arc::new(Gate::new(1)),
            timeout,
        }
    }

    async fn run(&self) -> Observation {
        let connect = tokio::net::TcpStream::connect(self.address.as_str());
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(_stream)) => {
                self.gate.answered();
                Observation::Pass
            }
            Ok(Err(e)) => {
                self.gate.answered();
                Observation::Fail(format!(
                    "cannot connect to {}: {}",
                    self.address,
                    super::os_error_text(&e.to_string()).to_lowercase()
                ))
            }
            Err(_) => Observation::Fail(format!(
                "no connection to {} within {} ms",
                self.address,
                self.timeout.as_millis()
            )),
        }
    }
}

impl Probe for TcpProbe {
    fn target(&self) -> &str {
        &self.target
    }

    fn gate(&self) -> Arc<Gate> {
        self.gate.clone()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn poll(&mut self) -> BoxFuture<'_, Observation> {
        Box::pin(self.run())
    }
}
