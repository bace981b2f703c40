//! The part of GoBGP's gRPC API v3 (package `apipb`, service `GobgpApi`, as gobgpd 3.x
//! serves it) that anycastd uses, written by hand from GoBGP's `api/gobgp.proto` and
//! `api/attribute.proto`: only the messages and fields read or sent here, with their names,
//! field numbers and types as the protos give them. Fields left out are skipped on decoding
//! (protobuf's rule for unknown fields) and never sent. Attributes and NLRI travel as
//! `google.protobuf.Any` ([`prost_types::Any`]) whose type URL names the `apipb` message.
//!
//! RPCs: `AddPath`, `DeletePath`, `ListPath` (server stream), `ListPeer` (server stream),
//! `GetBgp` (the global AS a prepend repeats) and `WatchEvent` (server stream, held open to
//! notice that gobgpd went away).

use crate::bgp::{Attributes, Community};
use ipnet::IpNet;
use prost::Message;
use std::time::Duration;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

/// `apipb.Family.Afi`.
pub const AFI_IP: i32 = 1;
/// `apipb.Family.Afi`.
pub const AFI_IP6: i32 = 2;
/// `apipb.Family.Safi`.
pub const SAFI_UNICAST: i32 = 1;

/// `apipb.TableType` (v3 numbers them from 0; v4 from 1).
pub const TABLE_GLOBAL: i32 = 0;
/// `apipb.TableType.ADJ_OUT`.
pub const TABLE_ADJ_OUT: i32 = 3;

/// `apipb.PeerState.SessionState.ESTABLISHED`.
pub const SESSION_ESTABLISHED: i32 = 6;

/// `apipb.TableLookupPrefix.Type.EXACT`.
pub const LOOKUP_EXACT: i32 = 0;

/// `apipb.AsSegment.Type.AS_SEQUENCE`.
pub const AS_SEQUENCE: i32 = 2;

/// `apipb.Family`.
#[derive(Clone, PartialEq, Message)]
pub struct Family {
    /// `afi` (enum `Afi`).
    #[prost(int32, tag = "1")]
    pub afi: i32,
    /// `safi` (enum `Safi`).
    #[prost(int32, tag = "2")]
    pub safi: i32,
}

impl Family {
    /// IPv4 or IPv6 unicast, by the prefix's family.
    pub fn unicast_of(prefix: &IpNet) -> Family {
        Family {
            afi: match prefix {
                IpNet::V4(_) => AFI_IP,
                IpNet::V6(_) => AFI_IP6,
            },
            safi: SAFI_UNICAST,
        }
    }
}

/// `apipb.Path`.
#[derive(Clone, PartialEq, Message)]
pub struct Path {
    /// `nlri`: here an `IPAddressPrefix`.
    #[prost(message, optional, tag = "1")]
    pub nlri: Option<prost_types::Any>,
    /// `pattrs`: `*Attribute` messages of `attribute.proto`.
    #[prost(message, repeated, tag = "2")]
    pub pattrs: Vec<prost_types::Any>,
    /// `best`.
    #[prost(bool, tag = "4")]
    pub best: bool,
    /// `is_withdraw`.
    #[prost(bool, tag = "5")]
    pub is_withdraw: bool,
    /// `family`.
    #[prost(message, optional, tag = "9")]
    pub family: Option<Family>,
    /// `source_asn`.
    #[prost(uint32, tag = "10")]
    pub source_asn: u32,
    /// `source_id`.
    #[prost(string, tag = "11")]
    pub source_id: String,
    /// `filtered`.
    #[prost(bool, tag = "12")]
    pub filtered: bool,
    /// `is_from_external`.
    #[prost(bool, tag = "14")]
    pub is_from_external: bool,
    /// `neighbor_ip`.
    #[prost(string, tag = "15")]
    pub neighbor_ip: String,
    /// `uuid`: "only paths installed by AddPath API have this".
    #[prost(bytes = "vec", tag = "16")]
    pub uuid: Vec<u8>,
    /// `is_nexthop_invalid`.
    #[prost(bool, tag = "17")]
    pub is_nexthop_invalid: bool,
    /// `identifier`: the path identifier of the NLRI (ADD-PATH), as given to `AddPath`.
    #[prost(uint32, tag = "18")]
    pub identifier: u32,
}

/// `apipb.Destination`.
#[derive(Clone, PartialEq, Message)]
pub struct Destination {
    /// `prefix`.
    #[prost(string, tag = "1")]
    pub prefix: String,
    /// `paths`.
    #[prost(message, repeated, tag = "2")]
    pub paths: Vec<Path>,
}

/// `apipb.AddPathRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct AddPathRequest {
    /// `table_type`.
    #[prost(int32, tag = "1")]
    pub table_type: i32,
    /// `vrf_id`.
    #[prost(string, tag = "2")]
    pub vrf_id: String,
    /// `path`.
    #[prost(message, optional, tag = "3")]
    pub path: Option<Path>,
}

/// `apipb.AddPathResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct AddPathResponse {
    /// `uuid`.
    #[prost(bytes = "vec", tag = "1")]
    pub uuid: Vec<u8>,
}

/// `apipb.DeletePathRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct DeletePathRequest {
    /// `table_type`.
    #[prost(int32, tag = "1")]
    pub table_type: i32,
    /// `vrf_id`.
    #[prost(string, tag = "2")]
    pub vrf_id: String,
    /// `family`.
    #[prost(message, optional, tag = "3")]
    pub family: Option<Family>,
    /// `path`.
    #[prost(message, optional, tag = "4")]
    pub path: Option<Path>,
    /// `uuid`.
    #[prost(bytes = "vec", tag = "5")]
    pub uuid: Vec<u8>,
}

/// `google.protobuf.Empty`.
#[derive(Clone, PartialEq, Message)]
pub struct Empty {}

/// `apipb.TableLookupPrefix`.
#[derive(Clone, PartialEq, Message)]
pub struct TableLookupPrefix {
    /// `prefix`.
    #[prost(string, tag = "1")]
    pub prefix: String,
    /// `type` (enum `Type`).
    #[prost(int32, tag = "2")]
    pub r#type: i32,
}

/// `apipb.ListPathRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct ListPathRequest {
    /// `table_type`.
    #[prost(int32, tag = "1")]
    pub table_type: i32,
    /// `name`: the neighbour of an adj-in or adj-out.
    #[prost(string, tag = "2")]
    pub name: String,
    /// `family`.
    #[prost(message, optional, tag = "3")]
    pub family: Option<Family>,
    /// `prefixes`.
    #[prost(message, repeated, tag = "4")]
    pub prefixes: Vec<TableLookupPrefix>,
}

/// `apipb.ListPathResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct ListPathResponse {
    /// `destination`.
    #[prost(message, optional, tag = "1")]
    pub destination: Option<Destination>,
}

/// `apipb.ListPeerRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct ListPeerRequest {
    /// `address`: empty for every neighbour.
    #[prost(string, tag = "1")]
    pub address: String,
}

/// `apipb.ListPeerResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct ListPeerResponse {
    /// `peer`.
    #[prost(message, optional, tag = "1")]
    pub peer: Option<Peer>,
}

/// `apipb.Peer`.
#[derive(Clone, PartialEq, Message)]
pub struct Peer {
    /// `conf`.
    #[prost(message, optional, tag = "2")]
    pub conf: Option<PeerConf>,
    /// `state`.
    #[prost(message, optional, tag = "5")]
    pub state: Option<PeerState>,
    /// `afi_safis`.
    #[prost(message, repeated, tag = "10")]
    pub afi_safis: Vec<AfiSafi>,
}

/// `apipb.PeerConf`.
#[derive(Clone, PartialEq, Message)]
pub struct PeerConf {
    /// `neighbor_address`.
    #[prost(string, tag = "4")]
    pub neighbor_address: String,
}

/// `apipb.PeerState`.
#[derive(Clone, PartialEq, Message)]
pub struct PeerState {
    /// `neighbor_address`.
    #[prost(string, tag = "5")]
    pub neighbor_address: String,
    /// `session_state` (enum `SessionState`).
    #[prost(int32, tag = "13")]
    pub session_state: i32,
}

/// `apipb.AfiSafi`.
#[derive(Clone, PartialEq, Message)]
pub struct AfiSafi {
    /// `config`.
    #[prost(message, optional, tag = "2")]
    pub config: Option<AfiSafiConfig>,
    /// `state`.
    #[prost(message, optional, tag = "3")]
    pub state: Option<AfiSafiConfig>,
}

/// `apipb.AfiSafiConfig` (and the first two fields of `apipb.AfiSafiState`, which has the
/// same numbers).
#[derive(Clone, PartialEq, Message)]
pub struct AfiSafiConfig {
    /// `family`.
    #[prost(message, optional, tag = "1")]
    pub family: Option<Family>,
    /// `enabled`.
    #[prost(bool, tag = "2")]
    pub enabled: bool,
}

/// `apipb.WatchEventRequest`: only `peer` (peer events), an empty message.
#[derive(Clone, PartialEq, Message)]
pub struct WatchEventRequest {
    /// `peer`.
    #[prost(message, optional, tag = "1")]
    pub peer: Option<Empty>,
}

/// `apipb.IPAddressPrefix`.
#[derive(Clone, PartialEq, Message)]
pub struct IpAddressPrefix {
    /// `prefix_len`.
    #[prost(uint32, tag = "1")]
    pub prefix_len: u32,
    /// `prefix`: the address.
    #[prost(string, tag = "2")]
    pub prefix: String,
}

/// `apipb.OriginAttribute`.
#[derive(Clone, PartialEq, Message)]
pub struct OriginAttribute {
    /// `origin`: 0 IGP, 1 EGP, 2 INCOMPLETE.
    #[prost(uint32, tag = "1")]
    pub origin: u32,
}

/// `apipb.NextHopAttribute`.
#[derive(Clone, PartialEq, Message)]
pub struct NextHopAttribute {
    /// `next_hop`.
    #[prost(string, tag = "1")]
    pub next_hop: String,
}

/// `apipb.MpReachNLRIAttribute`.
#[derive(Clone, PartialEq, Message)]
pub struct MpReachNlriAttribute {
    /// `family`.
    #[prost(message, optional, tag = "1")]
    pub family: Option<Family>,
    /// `next_hops`.
    #[prost(string, repeated, tag = "2")]
    pub next_hops: Vec<String>,
    /// `nlris`.
    #[prost(message, repeated, tag = "3")]
    pub nlris: Vec<prost_types::Any>,
}

/// `apipb.AsSegment`.
#[derive(Clone, PartialEq, Message)]
pub struct AsSegment {
    /// `type` (enum `Type`).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// `numbers`.
    #[prost(uint32, repeated, tag = "2")]
    pub numbers: Vec<u32>,
}

/// `apipb.AsPathAttribute`.
#[derive(Clone, PartialEq, Message)]
pub struct AsPathAttribute {
    /// `segments`.
    #[prost(message, repeated, tag = "1")]
    pub segments: Vec<AsSegment>,
}

/// `apipb.MultiExitDiscAttribute`.
#[derive(Clone, PartialEq, Message)]
pub struct MultiExitDiscAttribute {
    /// `med`.
    #[prost(uint32, tag = "1")]
    pub med: u32,
}

/// `apipb.CommunitiesAttribute`.
#[derive(Clone, PartialEq, Message)]
pub struct CommunitiesAttribute {
    /// `communities`: each `ASN:VALUE` as one 32-bit number.
    #[prost(uint32, repeated, tag = "1")]
    pub communities: Vec<u32>,
}

/// `apipb.LargeCommunity`.
#[derive(Clone, PartialEq, Message)]
pub struct LargeCommunity {
    /// `global_admin`.
    #[prost(uint32, tag = "1")]
    pub global_admin: u32,
    /// `local_data1`.
    #[prost(uint32, tag = "2")]
    pub local_data1: u32,
    /// `local_data2`.
    #[prost(uint32, tag = "3")]
    pub local_data2: u32,
}

/// `apipb.LargeCommunitiesAttribute`.
#[derive(Clone, PartialEq, Message)]
pub struct LargeCommunitiesAttribute {
    /// `communities`.
    #[prost(message, repeated, tag = "1")]
    pub communities: Vec<LargeCommunity>,
}

/// `apipb.GetBgpRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct GetBgpRequest {}

/// `apipb.GetBgpResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct GetBgpResponse {
    /// `global`.
    #[prost(message, optional, tag = "1")]
    pub global: Option<Global>,
}

/// `apipb.Global`.
#[derive(Clone, PartialEq, Message)]
pub struct Global {
    /// `asn`: the global AS.
    #[prost(uint32, tag = "1")]
    pub asn: u32,
}

/// A message as `google.protobuf.Any` with its `apipb` type name.
fn any<M: Message>(name: &str, message: &M) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("type.googleapis.com/apipb.{name}"),
        value: message.encode_to_vec(),
    }
}

/// The path of a locally originated prefix, as `gobgp global rib add P` builds it: the
/// prefix, origin IGP, next hop 0.0.0.0 (IPv4, in NEXT_HOP) or :: (IPv6, in MP_REACH_NLRI),
/// with `identifier` as its path identifier.
pub fn local_path(prefix: &IpNet, identifier: u32) -> Path {
    let nlri = any(
        "IPAddressPrefix",
        &IpAddressPrefix {
            prefix_len: u32::from(prefix.prefix_len()),
            prefix: prefix.addr().to_string(),
        },
    );
    let origin = any("OriginAttribute", &OriginAttribute { origin: 0 });
    let family = Family::unicast_of(prefix);
    let next_hop = match prefix {
        IpNet::V4(_) => any(
            "NextHopAttribute",
            &NextHopAttribute {
                next_hop: "0.0.0.0".into(),
            },
        ),
        IpNet::V6(_) => any(
            "MpReachNLRIAttribute",
            &MpReachNlriAttribute {
                family: Some(family.clone()),
                next_hops: vec!["::".into()],
                nlris: vec![nlri.clone()],
            },
        ),
    };
    Path {
        nlri: Some(nlri),
        pattrs: vec![origin, next_hop],
        family: Some(family),
        identifier,
        ..Path::default()
    }
}

/// `path` announced with `attributes` beside its own: the local AS `local_as` prepended
/// `as_path_prepend` times as the AS_PATH the path starts with (an EBGP session adds the AS
/// once more when it sends it, as to any local path), the MED, the communities.
pub fn with_attributes(mut path: Path, attributes: &Attributes, local_as: u32) -> Path {
    if attributes.as_path_prepend > 0 {
        let as_path = any(
            "AsPathAttribute",
            &AsPathAttribute {
                segments: vec![AsSegment {
                    r#type: AS_SEQUENCE,
                    numbers: vec![local_as; usize::from(attributes.as_path_prepend)],
                }],
            },
        );
        // After ORIGIN, as the attributes' type codes go.
        path.pattrs.insert(1.min(path.pattrs.len()), as_path);
    }
    if let Some(med) = attributes.med {
        path.pattrs.push(any(
            "MultiExitDiscAttribute",
            &MultiExitDiscAttribute { med },
        ));
    }
    if !attributes.communities.is_empty() {
        path.pattrs.push(any(
            "CommunitiesAttribute",
            &CommunitiesAttribute {
                communities: attributes.communities.iter().map(|c| c.as_u32()).collect(),
            },
        ));
    }
    if !attributes.large_communities.is_empty() {
        path.pattrs.push(any(
            "LargeCommunitiesAttribute",
            &LargeCommunitiesAttribute {
                communities: attributes
                    .large_communities
                    .iter()
                    .map(|c| LargeCommunity {
                        global_admin: c.0,
                        local_data1: c.1,
                        local_data2: c.2,
                    })
                    .collect(),
            },
        ));
    }
    path
}

/// What a path carries besides the plain route, from its attributes as gobgpd lists them:
/// a prepend counts the ASes of its AS_PATH (every segment), whichever they are.
pub fn attributes_of(path: &Path) -> Attributes {
    let mut out = Attributes::plain();
    for attribute in &path.pattrs {
        let Some(name) = attribute
            .type_url
            .strip_prefix("type.googleapis.com/apipb.")
        else {
            continue;
        };
        let value = attribute.value.as_slice();
        match name {
            "AsPathAttribute" => {
                if let Ok(a) = AsPathAttribute::decode(value) {
                    let n: usize = a.segments.iter().map(|s| s.numbers.len()).sum();
                    out.as_path_prepend = u8::try_from(n).unwrap_or(u8::MAX);
                }
            }
            "MultiExitDiscAttribute" => {
                if let Ok(a) = MultiExitDiscAttribute::decode(value) {
                    out.med = Some(a.med);
                }
            }
            "CommunitiesAttribute" => {
                if let Ok(a) = CommunitiesAttribute::decode(value) {
                    out.communities
                        .extend(a.communities.into_iter().map(Community::from_u32));
                }
            }
            "LargeCommunitiesAttribute" => {
                if let Ok(a) = LargeCommunitiesAttribute::decode(value) {
                    out.large_communities
                        .extend(a.communities.into_iter().map(|c| {
                            crate::bgp::LargeCommunity(c.global_admin, c.local_data1, c.local_data2)
                        }));
                }
            }
            _ => {}
        }
    }
    out.normalized()
}

/// The prefix of a path whose NLRI is an `IPAddressPrefix` (`None` for any other NLRI).
pub fn prefix_of(path: &Path) -> Option<IpNet> {
    let nlri = path.nlri.as_ref()?;
    if !nlri.type_url.ends_with("/apipb.IPAddressPrefix") {
        return None;
    }
    let p = IpAddressPrefix::decode(nlri.value.as_slice()).ok()?;
    let len = u8::try_from(p.prefix_len).ok()?;
    let addr: std::net::IpAddr = p.prefix.parse().ok()?;
    IpNet::new(addr, len).ok().map(|n| n.trunc())
}

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No answer in time.
    #[error("gobgpd at {endpoint} did not answer within {seconds} s ({what})")]
    Timeout {
        /// The API address.
        endpoint: String,
        /// The limit.
        seconds: f64,
        /// The RPC.
        what: &'static str,
    },
    /// The connection could not be made or broke.
    #[error("cannot reach gobgpd's API at {endpoint}: {message}")]
    Unreachable {
        /// The API address.
        endpoint: String,
        /// What failed.
        message: String,
    },
    /// gobgpd answered with an error.
    #[error("gobgpd refused {what}: {message}")]
    Refused {
        /// The RPC.
        what: &'static str,
        /// gobgpd's words (the gRPC status message).
        message: String,
    },
    /// A prefix placed in a table gobgpd does not have (it has its global RIB only).
    #[error("GoBGP at {endpoint} has only its global RIB, no VRF {place}")]
    NoTable {
        /// The API address.
        endpoint: String,
        /// The place asked for.
        place: String,
    },
    /// A change gobgpd accepted that a read-back does not show.
    #[error("gobgpd at {endpoint} accepted {} but its global RIB {}", if *.announce { "AddPath" } else { "DeletePath" }, if *.announce { "does not show the path" } else { "still shows the path" })]
    NotApplied {
        /// The API address.
        endpoint: String,
        /// An announcement (else a withdrawal).
        announce: bool,
    },
}

/// A client of one gobgpd's API: one HTTP/2 connection, made at the first call and again
/// after it broke; every call has the time limit of `[gobgp] timeout`.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: String,
    timeout: Duration,
    channel: Channel,
}

impl Client {
    /// A client of the API at `endpoint` (`HOST:PORT`). Must be called within a Tokio
    /// runtime (the connection's task runs there); nothing is connected yet.
    pub fn new(endpoint: &str, timeout: Duration) -> Result<Client, ApiError> {
        let uri = format!("http://{endpoint}");
        let channel = Endpoint::from_shared(uri)
            .map_err(|e| ApiError::Unreachable {
                endpoint: endpoint.to_owned(),
                message: e.to_string(),
            })?
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect_lazy();
        Ok(Client {
            endpoint: endpoint.to_owned(),
            timeout,
            channel,
        })
    }

    /// The API address.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn error(&self, what: &'static str, status: tonic::Status) -> ApiError {
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::Unknown
                if status.message().contains("transport") || status.message().is_empty() =>
            {
                ApiError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    message: status_text(&status),
                }
            }
            tonic::Code::Unavailable | tonic::Code::Cancelled => ApiError::Unreachable {
                endpoint: self.endpoint.clone(),
                message: status_text(&status),
            },
            tonic::Code::DeadlineExceeded => self.timeout(what),
            _ => ApiError::Refused {
                what,
                message: status.message().to_owned(),
            },
        }
    }

    fn timeout(&self, what: &'static str) -> ApiError {
        ApiError::Timeout {
            endpoint: self.endpoint.clone(),
            seconds: self.timeout.as_secs_f64(),
            what,
        }
    }

    async fn grpc(&self, what: &'static str) -> Result<tonic::client::Grpc<Channel>, ApiError> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.map_err(|e| ApiError::Unreachable {
            endpoint: self.endpoint.clone(),
            message: format!("{what}: {e}"),
        })?;
        Ok(grpc)
    }

    async fn unary<Q, R>(&self, what: &'static str, request: Q) -> Result<R, ApiError>
    where
        Q: Message + Send + Sync + 'static,
        R: Message + Default + Send + Sync + 'static,
    {
        let call = async {
            let mut grpc = self.grpc(what).await?;
            let path = PathAndQuery::from_static(method(what));
            grpc.unary(
                tonic::Request::new(request),
                path,
                tonic_prost::ProstCodec::default(),
            )
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| self.error(what, s))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| self.timeout(what))?
    }

    /// A server stream read to its end.
    async fn collect<Q, R>(&self, what: &'static str, request: Q) -> Result<Vec<R>, ApiError>
    where
        Q: Message + Send + Sync + 'static,
        R: Message + Default + Send + Sync + 'static,
    {
        let call = async {
            let mut stream = self.stream::<Q, R>(what, request).await?;
            let mut out = Vec::new();
            while let Some(item) = stream.message().await.map_err(|s| self.error(what, s))? {
                out.push(item);
            }
            Ok(out)
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| self.timeout(what))?
    }

    async fn stream<Q, R>(
        &self,
        what: &'static str,
        request: Q,
    ) -> Result<tonic::Streaming<R>, ApiError>
    where
        Q: Message + Send + Sync + 'static,
        R: Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.grpc(what).await?;
        let path = PathAndQuery::from_static(method(what));
        grpc.server_streaming(
            tonic::Request::new(request),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| self.error(what, s))
    }

    /// `AddPath` to the global RIB; returns the path's UUID.
    pub async fn add_path(&self, path: Path) -> Result<Vec<u8>, ApiError> {
        let response: AddPathResponse = self
            .unary(
                "AddPath",
                AddPathRequest {
                    table_type: TABLE_GLOBAL,
                    vrf_id: String::new(),
                    path: Some(path),
                },
            )
            .await?;
        Ok(response.uuid)
    }

    /// `DeletePath` of `path` from the global RIB: gobgpd withdraws its local path with the
    /// same NLRI and path identifier. (`ListPath` of gobgpd 3.10 lists no UUID, so a path
    /// found by a read can only be named so.)
    pub async fn delete_path(&self, path: Path) -> Result<(), ApiError> {
        let _: Empty = self
            .unary(
                "DeletePath",
                DeletePathRequest {
                    table_type: TABLE_GLOBAL,
                    vrf_id: String::new(),
                    family: path.family.clone(),
                    path: Some(path),
                    uuid: Vec::new(),
                },
            )
            .await?;
        Ok(())
    }

    /// `ListPath` of a table (`name`: the neighbour of an adj-out), one family, optionally
    /// only `prefixes` (exact).
    pub async fn list_path(
        &self,
        table_type: i32,
        name: &str,
        family: Family,
        prefixes: &[IpNet],
    ) -> Result<Vec<Destination>, ApiError> {
        let responses: Vec<ListPathResponse> = self
            .collect(
                "ListPath",
                ListPathRequest {
                    table_type,
                    name: name.to_owned(),
                    family: Some(family),
                    prefixes: prefixes
                        .iter()
                        .map(|p| TableLookupPrefix {
                            prefix: p.to_string(),
                            r#type: LOOKUP_EXACT,
                        })
                        .collect(),
                },
            )
            .await?;
        Ok(responses
            .into_iter()
            .filter_map(|r| r.destination)
            .collect())
    }

    /// `GetBgp`: the global AS.
    pub async fn local_as(&self) -> Result<u32, ApiError> {
        let response: GetBgpResponse = self.unary("GetBgp", GetBgpRequest {}).await?;
        Ok(response.global.map(|g| g.asn).unwrap_or_default())
    }

    /// `ListPeer`: every neighbour.
    pub async fn list_peer(&self) -> Result<Vec<Peer>, ApiError> {
        let responses: Vec<ListPeerResponse> = self
            .collect(
                "ListPeer",
                ListPeerRequest {
                    address: String::new(),
                },
            )
            .await?;
        Ok(responses.into_iter().filter_map(|r| r.peer).collect())
    }

    /// `WatchEvent` for peer events: a stream that stays open while this gobgpd process
    /// runs (its messages are not looked at). Opening it has the time limit; the stream has
    /// none.
    pub async fn watch(&self) -> Result<tonic::Streaming<Empty>, ApiError> {
        let open = self.stream::<WatchEventRequest, Empty>(
            "WatchEvent",
            WatchEventRequest {
                peer: Some(Empty {}),
            },
        );
        tokio::time::timeout(self.timeout, open)
            .await
            .map_err(|_| self.timeout("WatchEvent"))?
    }
}

/// The gRPC path of an RPC of `apipb.GobgpApi`.
fn method(what: &'static str) -> &'static str {
    match what {
        "AddPath" => "/apipb.GobgpApi/AddPath",
        "DeletePath" => "/apipb.GobgpApi/DeletePath",
        "ListPath" => "/apipb.GobgpApi/ListPath",
        "ListPeer" => "/apipb.GobgpApi/ListPeer",
        "GetBgp" => "/apipb.GobgpApi/GetBgp",
        _ => "/apipb.GobgpApi/WatchEvent",
    }
}

/// A gRPC status in words, with its source when it has one (a refused connection).
fn status_text(status: &tonic::Status) -> String {
    use std::error::Error;
    let mut text = status.message().to_owned();
    let mut source = status.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&more);
        }
        source = e.source();
    }
    if text.is_empty() {
        text = format!("{:?}", status.code());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_path_round_trips_its_prefix_and_carries_what_the_cli_sends() {
        for (text, next_hop_type) in [
            (
                "203.0.113.53/32",
                "type.googleapis.com/apipb.NextHopAttribute",
            ),
            (
                "2001:db8::53/128",
                "type.googleapis.com/apipb.MpReachNLRIAttribute",
            ),
        ] {
            let prefix: IpNet = text.parse().unwrap();
            let path = local_path(&prefix, 7);
            assert_eq!(prefix_of(&path), Some(prefix));
            assert_eq!(path.identifier, 7);
            assert_eq!(path.pattrs.len(), 2);
            assert_eq!(
                path.pattrs[0].type_url,
                "type.googleapis.com/apipb.OriginAttribute"
            );
            assert_eq!(path.pattrs[1].type_url, next_hop_type);
            // Encoded and decoded as gobgpd would.
            let back = Path::decode(path.encode_to_vec().as_slice()).unwrap();
            assert_eq!(back, path);
        }
    }

    #[test]
    fn attributes_go_into_a_path_and_come_back() {
        use crate::bgp::{LargeCommunity, GRACEFUL_SHUTDOWN};
        let wanted = Attributes {
            as_path_prepend: 3,
            med: Some(1000),
            communities: vec![Community(65000, 666), GRACEFUL_SHUTDOWN],
            large_communities: vec![LargeCommunity(65000, 1, 666)],
        }
        .normalized();
        let prefix: IpNet = "198.51.100.53/32".parse().unwrap();
        let path = with_attributes(local_path(&prefix, 7), &wanted, 65539);
        let types: Vec<&str> = path
            .pattrs
            .iter()
            .map(|a| a.type_url.trim_start_matches("type.googleapis.com/apipb."))
            .collect();
        assert_eq!(
            types,
            [
                "OriginAttribute",
                "AsPathAttribute",
                "NextHopAttribute",
                "MultiExitDiscAttribute",
                "CommunitiesAttribute",
                "LargeCommunitiesAttribute"
            ]
        );
        let back = Path::decode(path.encode_to_vec().as_slice()).unwrap();
        assert_eq!(attributes_of(&back), wanted);
        // The plain route adds nothing.
        assert_eq!(
            with_attributes(local_path(&prefix, 7), &Attributes::plain(), 65539),
            local_path(&prefix, 7)
        );
        assert_eq!(attributes_of(&local_path(&prefix, 7)), Attributes::plain());
    }

    #[test]
    fn attributes_encode_as_the_protos_say() {
        // AsPathAttribute{segments=1: [AsSegment{type=1: AS_SEQUENCE (2), numbers=2: packed
        // [65539, 65539]}]}: 65539 is the varint 0x83 0x80 0x04.
        let bytes = AsPathAttribute {
            segments: vec![AsSegment {
                r#type: AS_SEQUENCE,
                numbers: vec![65539, 65539],
            }],
        }
        .encode_to_vec();
        assert_eq!(
            bytes,
            [0x0a, 10, 0x08, 2, 0x12, 6, 0x83, 0x80, 0x04, 0x83, 0x80, 0x04]
        );
        // CommunitiesAttribute{communities=1: packed [65535:0 = 0xffff0000]}.
        let bytes = CommunitiesAttribute {
            communities: vec![crate::bgp::GRACEFUL_SHUTDOWN.as_u32()],
        }
        .encode_to_vec();
        assert_eq!(bytes, [0x0a, 5, 0x80, 0x80, 0xfc, 0xff, 0x0f]);
        // LargeCommunity{global_admin=1, local_data1=2, local_data2=3} in its list (1).
        let bytes = LargeCommunitiesAttribute {
            communities: vec![LargeCommunity {
                global_admin: 1,
                local_data1: 2,
                local_data2: 3,
            }],
        }
        .encode_to_vec();
        assert_eq!(bytes, [0x0a, 6, 0x08, 1, 0x10, 2, 0x18, 3]);
        // MultiExitDiscAttribute{med=1: 1000}; GetBgpResponse{global=1: Global{asn=1}}.
        assert_eq!(
            MultiExitDiscAttribute { med: 1000 }.encode_to_vec(),
            [0x08, 0xe8, 0x07]
        );
        let response = GetBgpResponse::decode([0x0a, 3, 0x08, 0xc3, 0x80].as_slice());
        assert!(response.is_err(), "a truncated varint");
        let response = GetBgpResponse::decode([0x0a, 4, 0x08, 0x83, 0x80, 0x04].as_slice());
        assert_eq!(response.unwrap().global.unwrap().asn, 65539);
    }

    #[test]
    fn field_numbers_are_the_protos() {
        // AddPathRequest{table_type=0 (omitted), path=3}: the path's tag is 3, wire type 2.
        let bytes = AddPathRequest {
            table_type: TABLE_GLOBAL,
            vrf_id: String::new(),
            path: Some(Path {
                identifier: 1,
                ..Path::default()
            }),
        }
        .encode_to_vec();
        // path (3<<3|2 = 0x1a), length 3, identifier (18<<3|0 = 0x90 0x01), 1
        assert_eq!(bytes, [0x1a, 3, 0x90, 0x01, 1]);
    }
}
