//! `checks.dns`: one query per poll (no cache, no retry), sent to `server` over UDP (falling
//! back to TCP when the answer is truncated) or TCP. It passes when the response code is
//! `rcode` (default NOERROR) and, for NOERROR, the answer holds a record of the asked type and
//! every address of `expect`. The query and response codec is [`super::dns_wire`].

use super::dns_wire::{self, RecordType};
use super::{BoxFuture, Gate, Kind, Kinds, Observation, Probe};
use crate::config::{Check, KindItem, Node};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The default DNS server of a `checks.dns`.
pub const DEFAULT_DNS_SERVER: &str = "127.0.0.1:53";

/// `checks.dns`: the query and what its answer must be.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsCheck {
    /// The server asked.
    pub server: std::net::SocketAddr,
    /// The name asked for.
    pub name: String,
    /// The record type asked for.
    pub rtype: RecordType,
    /// Over TCP instead of UDP.
    pub tcp: bool,
    /// Addresses that must all be in the answer.
    pub expect: Vec<std::net::IpAddr>,
    /// The response code that passes (default NOERROR).
    pub rcode: u8,
}

/// The DNS check kind: a DNS query whose answer must match. A plain item is the name asked
/// for.
#[derive(Debug, Clone, PartialEq)]
pub struct Dns(pub DnsCheck);

/// The kind's table as it is written, for `anycastd schema` (described, never built).
mod schema {
    #![allow(dead_code)]
    use crate::config::schema::check_table;
    use schemars::JsonSchema;

    check_table!(Dns {
        query: String,
        r#type: Option<DnsType>,
        server: Option<String>,
        protocol: Option<DnsProtocol>,
        expect: Option<Vec<String>>,
        rcode: Option<Rcode>,
    });

    /// A record type, in any case: A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT, CAA.
    #[derive(JsonSchema)]
    pub struct DnsType(
        #[schemars(regex(
            pattern = r"^([Aa]|[Aa][Aa][Aa][Aa]|[Cc][Nn][Aa][Mm][Ee]|[Mm][Xx]|[Nn][Ss]|[Pp][Tt][Rr]|[Ss][Oo][Aa]|[Ss][Rr][Vv]|[Tt][Xx][Tt]|[Cc][Aa][Aa])$"
        ))]
        String,
    );

    #[derive(JsonSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum DnsProtocol {
        Udp,
        Tcp,
    }

    /// A response code, in any case: NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED.
    #[derive(JsonSchema)]
    pub struct Rcode(
        #[schemars(regex(
            pattern = r"^([Nn][Oo][Ee][Rr][Rr][Oo][Rr]|[Ff][Oo][Rr][Mm][Ee][Rr][Rr]|[Ss][Ee][Rr][Vv][Ff][Aa][Ii][Ll]|[Nn][Xx][Dd][Oo][Mm][Aa][Ii][Nn]|[Nn][Oo][Tt][Ii][Mm][Pp]|[Rr][Ee][Ff][Uu][Ss][Ee][Dd])$"
        ))]
        String,
    );
}

impl Kind for Dns {
    const NAME: &'static str = "dns";
    const LABEL: &'static str = "DNS";
    type Schema = schema::Dns;

    /// `name` is the check's; the query is `query`, `type`, `server`, `protocol`; the answer
    /// must have `rcode` and every address of `expect`.
    fn parse(item: &mut KindItem<'_, '_, '_>) -> Option<(Dns, String)> {
        let path = item.path().to_owned();
        let key = |k: &str| format!("{path}.{k}");
        let required = item.required("query");
        let query = required.and_then(|(node, p)| {
            let q = item.string(node, &p)?;
            match dns_wire::check_name(&q) {
                Ok(()) => Some(q),
                Err(e) => {
                    item.problem(node, &p, format!("{q:?}: {e}"));
                    None
                }
            }
        });
        let type_node = item.take("type");
        let rtype = match type_node {
            Some(n) => {
                let p = key("type");
                item.string(n, &p).and_then(|t| match RecordType::from_name(&t) {
                    Some(r) => Some(r),
                    None => {
                        item.problem(n,
                            &p,
                            format!("unknown record type {t:?} (known: A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT, CAA)"),
                        );
                        None
                    }
                })
            }
            None => Some(RecordType::A),
        };
        let server = match item.take("server") {
            Some(n) => {
                let p = key("server");
                item.string(n, &p).and_then(|s| match socket_addr(&s, 53) {
                    Some(a) => Some(a),
                    None => {
                        item.problem(n,
                            &p,
                            format!("{s:?} is not an IP address with an optional port, like \"127.0.0.1:53\" or \"[::1]:53\""),
                        );
                        None
                    }
                })
            }
            None => socket_addr(DEFAULT_DNS_SERVER, 53),
        };
        let tcp = match item.take("protocol") {
            Some(n) => {
                let p = key("protocol");
                match item.string(n, &p).as_deref() {
                    Some("udp") => Some(false),
                    Some("tcp") => Some(true),
                    Some(other) => {
                        item.problem(n, &p, format!("{other:?} is not udp or tcp"));
                        None
                    }
                    None => None,
                }
            }
            None => Some(false),
        };
        let rcode = match item.take("rcode") {
            Some(n) => {
                let p = key("rcode");
                item.string(n, &p).and_then(|r| match dns_wire::rcode_from_name(&r) {
                    Some(c) => Some(c),
                    None => {
                        item.problem(n,
                            &p,
                            format!("{r:?} is not one of NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED"),
                        );
                        None
                    }
                })
            }
            None => Some(0),
        };
        let expect_node = item.take("expect");
        let expect = match expect_node {
            Some(n) => addresses(item, n, &key("expect")),
            None => Some(Vec::new()),
        };
        let (query, rtype, expect, rcode) = (query?, rtype?, expect?, rcode?);
        if let Some(n) = expect_node {
            let p = key("expect");
            let family_ok = |a: &IpAddr| match rtype {
                RecordType::A => a.is_ipv4(),
                RecordType::Aaaa => a.is_ipv6(),
                _ => false,
            };
            if !matches!(rtype, RecordType::A | RecordType::Aaaa) {
                item.problem(n, &p, "applies to type A or AAAA only");
                return None;
            }
            if let Some(a) = expect.iter().find(|a| !family_ok(a)) {
                item.problem(
                    n,
                    &p,
                    format!("{a} cannot be in the answer to {} queries", rtype.name()),
                );
                return None;
            }
            if rcode != 0 && !expect.is_empty() {
                item.problem(
                    n,
                    &p,
                    "an answer with rcode other than NOERROR has no addresses",
                );
                return None;
            }
        }
        let derived = format!("{query} {}", rtype.name());
        Some((
            Dns(DnsCheck {
                server: server?,
                name: query,
                rtype,
                tcp: tcp?,
                expect,
                rcode,
            }),
            derived,
        ))
    }

    /// The query, and what the answer must be.
    fn identity(&self) -> String {
        let d = &self.0;
        let mut s = format!(
            "{} {} @{} {}",
            d.name,
            d.rtype.name(),
            d.server,
            if d.tcp { "tcp" } else { "udp" }
        );
        if d.rcode != 0 {
            s.push_str(&format!(" rcode {}", dns_wire::rcode_name(d.rcode)));
        }
        if !d.expect.is_empty() {
            let list: Vec<String> = d.expect.iter().map(|a| a.to_string()).collect();
            s.push_str(&format!(" expect {}", list.join(",")));
        }
        s
    }

    fn probe(&self, _: &str, check: &Check, shared: &Kinds) -> Box<dyn Probe> {
        Box::new(DnsProbe::new(&shared.dns, &self.0, check.timeout))
    }
}

/// An array of IP addresses.
fn addresses(item: &mut KindItem<'_, '_, '_>, node: &Node, path: &str) -> Option<Vec<IpAddr>> {
    let list = item.strings(node, path)?;
    let mut out = Vec::new();
    for a in list {
        match a.parse::<IpAddr>() {
            Ok(ip) => out.push(ip),
            Err(_) => {
                item.problem(node, path, format!("{a:?} is not an IP address"));
                return None;
            }
        }
    }
    Some(out)
}

/// An IP address with an optional port (`127.0.0.1`, `127.0.0.1:5353`, `::1`, `[::1]:53`).
fn socket_addr(text: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(a);
    }
    text.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, default_port))
}

/// Queries in flight to one server at a time.
pub const MAX_IN_FLIGHT: usize = 16;
/// Largest UDP response read.
const UDP_LIMIT: usize = 4096;

/// The gates every DNS check shares (one per server and protocol).
#[derive(Clone, Default)]
pub struct Shared {
    gates: Arc<Mutex<HashMap<String, Arc<Gate>>>>,
}

/// One DNS check.
pub struct DnsProbe {
    target: String,
    gate: Arc<Gate>,
    timeout: Duration,
    check: DnsCheck,
}

impl DnsProbe {
    /// The probe of a configured DNS check.
    pub fn new(shared: &Shared, check: &DnsCheck, timeout: Duration) -> DnsProbe {
        let target = format!(
            "dns:{}:{}",
            if check.tcp { "tcp" } else { "udp" },
            check.server
        );
        let gate = {
            let mut gates = shared.gates.lock().unwrap_or_else(|p| p.into_inner());
            gates
                .entry(target.clone())
                .or_insert_with(|| Arc::new(Gate::new(MAX_IN_FLIGHT)))
                .clone()
        };
        DnsProbe {
            target,
            gate,
            timeout,
            check: check.clone(),
        }
    }

    async fn run(&self) -> Observation {
        let c = &self.check;
        let id = query_id();
        let query = dns_wire::encode_query(id, &c.name, c.rtype);
        let exchange = async {
            let mut response = if c.tcp {
                tcp_exchange(c.server, &query).await?
            } else {
                udp_exchange(c.server, &query, id).await?
            };
            let mut parsed = dns_wire::parse_response(&response, id, &c.name, c.rtype)?;
            if parsed.truncated && !c.tcp {
                response = tcp_exchange(c.server, &query).await?;
                parsed = dns_wire::parse_response(&response, id, &c.name, c.rtype)?;
            }
            Ok::<_, ExchangeError>(parsed)
        };
        let response = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Observation::Fail(format!("{}: {e}", c.server)),
            Err(_) => {
                return Observation::Fail(format!(
                    "no answer from {} within {} ms",
                    c.server,
                    self.timeout.as_millis()
                ))
            }
        };
        self.gate.answered();
        judge(c, &response)
    }
}

/// Whether a response passes the check, and why not.
pub fn judge(c: &DnsCheck, r: &dns_wire::Response) -> Observation {
    if r.rcode != c.rcode {
        return Observation::Fail(format!(
            "{} {}: {} (expected {})",
            c.name,
            c.rtype.name(),
            dns_wire::rcode_name(r.rcode),
            dns_wire::rcode_name(c.rcode)
        ));
    }
    if c.rcode != 0 {
        return Observation::Pass;
    }
    if r.answers_of_type == 0 {
        return Observation::Fail(format!("{} {}: no answer", c.name, c.rtype.name()));
    }
    let missing: Vec<String> = c
        .expect
        .iter()
        .filter(|a| !r.addresses.contains(a))
        .map(IpAddr::to_string)
        .collect();
    if !missing.is_empty() {
        let got: Vec<String> = r
            .addresses
            .iter()
            .filter(|a| {
                matches!(
                    (c.rtype, a),
                    (RecordType::A, IpAddr::V4(_)) | (RecordType::Aaaa, IpAddr::V6(_))
                )
            })
            .map(IpAddr::to_string)
            .collect();
        return Observation::Fail(format!(
            "{} {}: {} not in the answer ({})",
            c.name,
            c.rtype.name(),
            missing.join(", "),
            if got.is_empty() {
                "none".to_owned()
            } else {
                got.join(", ")
            }
        ));
    }
    Observation::Pass
}

/// A query id no two queries in a row share.
fn query_id() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos as u16) ^ NEXT.fetch_add(0x9e37, Ordering::Relaxed)
}

/// One query over UDP; answers of another id (a late answer to an earlier query) are skipped.
async fn udp_exchange(server: SocketAddr, query: &[u8], id: u16) -> Result<Vec<u8>, ExchangeError> {
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local).await.map_err(io_text)?;
    socket.connect(server).await.map_err(io_text)?;
    socket.send(query).await.map_err(io_text)?;
    let mut buf = vec![0u8; UDP_LIMIT];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io_text)?;
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// One query over TCP (length-prefixed, RFC 1035 §4.2.2).
async fn tcp_exchange(server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, ExchangeError> {
    let mut stream = tokio::net::TcpStream::connect(server)
        .await
        .map_err(io_text)?;
    let len = u16::try_from(query.len()).map_err(|_| ExchangeError::QueryTooLong)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).await.map_err(io_text)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(io_text)?;
    let mut response = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut response).await.map_err(io_text)?;
    Ok(response)
}

fn io_text(e: std::io::Error) -> ExchangeError {
    ExchangeError::Io(e)
}

/// Why a query got no usable response.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    /// Sending or receiving failed (`connection refused`).
    #[error("{}", super::os_error_text(&.0.to_string()).to_lowercase())]
    Io(std::io::Error),
    /// Longer than a TCP length prefix can say.
    #[error("query too long")]
    QueryTooLong,
    /// The response is not the answer to the query.
    #[error(transparent)]
    Wire(#[from] dns_wire::WireError),
}

impl Probe for DnsProbe {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rcode: u8, expect: &[&str]) -> DnsCheck {
        DnsCheck {
            server: "127.0.0.1:53".parse().unwrap(),
            name: "check.local".into(),
            rtype: RecordType::Aaaa,
            tcp: false,
            expect: expect.iter().map(|a| a.parse().unwrap()).collect(),
            rcode,
        }
    }

    fn response(rcode: u8, addresses: &[&str]) -> dns_wire::Response {
        dns_wire::Response {
            rcode,
            truncated: false,
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            answers_of_type: addresses.len(),
            answers: addresses.len(),
        }
    }

    #[test]
    fn the_rcode_decides_first_then_the_answer() {
        let servfail = rcode_from("SERVFAIL");
        assert_eq!(
            judge(&check(0, &[]), &response(servfail, &[])),
            Observation::Fail("check.local AAAA: SERVFAIL (expected NOERROR)".into())
        );
        assert_eq!(
            judge(&check(servfail, &[]), &response(servfail, &[])),
            Observation::Pass
        );
        assert_eq!(
            judge(&check(0, &[]), &response(0, &[])),
            Observation::Fail("check.local AAAA: no answer".into())
        );
        assert_eq!(
            judge(
                &check(0, &["2001:db8::1"]),
                &response(0, &["2001:db8::1", "2001:db8::2"])
            ),
            Observation::Pass
        );
        assert_eq!(
            judge(&check(0, &["2001:db8::3"]), &response(0, &["2001:db8::1"])),
            Observation::Fail(
                "check.local AAAA: 2001:db8::3 not in the answer (2001:db8::1)".into()
            )
        );
    }

    fn rcode_from(name: &str) -> u8 {
        dns_wire::rcode_from_name(name).unwrap()
    }
}
