//! `checks.tcp`: passes when a connection to `address` is accepted within the timeout; the
//! connection is closed at once, nothing is sent. A host name is resolved at every poll and
//! its addresses are tried in order.

use super::{BoxFuture, Gate, Observation, Probe};
use std::sync::Arc;
use std::time::Duration;

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
