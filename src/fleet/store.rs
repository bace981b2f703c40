//! The fleet's records in etcd: connecting (TLS, user), reading every site's record of a
//! service, publishing this site's, and the guarded withdrawal's transaction.
//!
//! Why a grant is linearizable: a withdrawal counts the other sites that announce the
//! service (one range read), and if at least `needed` do, commits in one etcd `Txn` that
//! compares the `mod_revision` of `needed` of those announcing sites' keys (the witnesses)
//! with the revisions it read, and puts this site's record as withdrawn. etcd applies a
//! `Txn` atomically at one revision, so when it succeeds the witnesses were, at the moment of
//! the commit, still announcing: a witness that withdrew (its own `Txn` or put changed its
//! key), died (its lease lapsed and deleted its key: a missing key compares as revision 0) or
//! changed in any way makes the compare fail, and the asker counts again. Two sites asking at
//! once cannot both be granted past the minimum: whichever commits first changes its own key,
//! and a second whose witnesses include it fails and recounts; a second whose witnesses do
//! not include it keeps `needed` sites announcing that are unchanged, which is all the
//! minimum asks. A `Txn` compares at most `needed` keys, within etcd's `--max-txn-ops`
//! (128 by default).

use super::{Count, Published, Rule, Settings, SiteState};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one etcd request may take before the guard calls etcd unreachable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Why etcd could not be used, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl From<etcd_client::Error> for StoreError {
    fn from(e: etcd_client::Error) -> StoreError {
        StoreError(short(&e))
    }
}

/// An etcd client error as an operator reads it, in one line: `connection refused`, `TLS
/// handshake failed: etcd's certificate is not signed by the configured ca (...)`, `deadline
/// exceeded`, `permission denied: ...`, `authentication failed: ...`, else the root cause at
/// the bottom of tonic's chain of sources, never the chain's debug text.
pub fn short(e: &etcd_client::Error) -> String {
    use std::error::Error as _;
    let status = match e {
        etcd_client::Error::GRpcStatus(status) => Some(status),
        _ => None,
    };
    // The error's sources, down to the root cause.
    let mut chain: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = match e {
        etcd_client::Error::GRpcStatus(status) => status.source(),
        etcd_client::Error::TransportError(t) => Some(t),
        etcd_client::Error::IoError(io) => Some(io),
        _ => None,
    };
    while let Some(error) = next {
        chain.push(error);
        next = error.source();
    }
    for error in &chain {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
                std::io::ErrorKind::ConnectionReset => return "connection reset".to_owned(),
                std::io::ErrorKind::TimedOut => return "connection timed out".to_owned(),
                _ => {}
            }
        }
    }
    let texts: Vec<String> = chain.iter().map(|e| e.to_string()).collect();
    if let Some(tls) = texts.iter().find(|t| tls_failure(t)) {
        return format!("TLS handshake failed: {}", tls_words(tls));
    }
    if let Some(status) = status {
        let message = status.message().trim_start_matches("etcdserver: ");
        match status.code() {
            tonic::Code::DeadlineExceeded => return "deadline exceeded".to_owned(),
            tonic::Code::Cancelled if status.message() == "Timeout expired" => {
                return "deadline exceeded".to_owned()
            }
            tonic::Code::PermissionDenied => return said_as("permission denied", message),
            tonic::Code::Unauthenticated => return said_as("authentication failed", message),
            _ if message.starts_with("authentication failed") => {
                return message.replacen("authentication failed, ", "authentication failed: ", 1)
            }
            _ => {}
        }
    }
    if let Some(root) = texts.last() {
        return root.clone();
    }
    match status {
        Some(status) if !status.message().is_empty() => status.message().to_owned(),
        Some(status) => format!("gRPC status {:?}", status.code()),
        None => e.to_string(),
    }
}

/// `message` led by `what` (etcd's own messages often are already).
fn said_as(what: &str, message: &str) -> String {
    if message.starts_with(what) {
        message.to_owned()
    } else {
        format!("{what}: {message}")
    }
}

/// Whether one error's words tell of a failed TLS handshake (rustls's errors: `invalid peer
/// certificate: ...`, `received fatal alert: ...`, `received corrupt message ...` when the
/// endpoint does not speak TLS).
fn tls_failure(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "certificate",
        "tls",
        "handshake",
        "alert",
        "corrupt message",
    ]
    .iter()
    .any(|word| text.contains(word))
}

/// A TLS failure in words, with what rustls said.
fn tls_words(text: &str) -> String {
    // BadSignature: a CA of the same name did not sign it.
    let meaning = if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        "etcd's certificate is not signed by the configured ca"
    } else if text.contains("Expired") {
        "etcd's certificate has expired"
    } else if text.contains("NotValidForName") {
        "etcd's certificate is not valid for the endpoint's host"
    } else if text.contains("corrupt message") {
        "the endpoint does not speak TLS"
    } else {
        return text.to_owned();
    };
    format!("{meaning} ({text})")
}

/// Run one etcd request with [`REQUEST_TIMEOUT`].
pub async fn timed<T, F>(what: &str, future: F) -> Result<T, StoreError>
where
    F: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    match tokio::time::timeout(REQUEST_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(StoreError(format!("{what}: {}", short(&e)))),
        Err(_) => Err(StoreError(format!(
            "{what}: deadline exceeded (no answer within {} s)",
            REQUEST_TIMEOUT.as_secs()
        ))),
    }
}

/// Connect to etcd as `[fleet]` says (TLS files and the password file are read here).
pub async fn connect(settings: &Settings) -> Result<Client, StoreError> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(REQUEST_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
        .with_keep_alive(Duration::from_secs(2), REQUEST_TIMEOUT);
    if let Some((user, password_file)) = &settings.user {
        let password = std::fs::read_to_string(password_file).map_err(|e| {
            StoreError(format!(
                "password_file {}: {}",
                password_file.display(),
                crate::io_text::io_reason(&e)
            ))
        })?;
        options = options.with_user(user.clone(), password.trim_end_matches(['\n', '\r']));
    }
    if let Some(tls) = &settings.tls {
        let read = |path: &std::path::PathBuf, what: &str| {
            std::fs::read(path).map_err(|e| {
                StoreError(format!(
                    "{what} {}: {}",
                    path.display(),
                    crate::io_text::io_reason(&e)
                ))
            })
        };
        let mut config = etcd_client::TlsOptions::new();
        if let Some(ca) = &tls.ca {
            config = config.ca_certificate(etcd_client::Certificate::from_pem(read(ca, "ca")?));
        }
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            config = config.identity(etcd_client::Identity::from_pem(
                read(cert, "cert")?,
                read(key, "key")?,
            ));
        }
        options = options.with_tls(config);
    }
    timed(
        "connecting",
        Client::connect(settings.endpoints.clone(), Some(options)),
    )
    .await
}

/// A site's record of a service as read from etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The record.
    pub published: Published,
    /// Its key's mod_revision (the transaction's witness).
    pub revision: i64,
    /// The lease it is attached to.
    pub lease: i64,
}

/// Every site's record of `service`, by site name. Records that do not parse are left out
/// (another program's keys).
pub async fn sites(
    client: &mut Client,
    prefix: &str,
    service: &str,
) -> Result<BTreeMap<String, Read>, StoreError> {
    let key = super::sites_prefix(prefix, service);
    let response = timed(
        "reading the fleet",
        client.get(key.clone(), Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let mut sites = BTreeMap::new();
    for kv in response.kvs() {
        let Ok(name) = kv.key_str() else { continue };
        let Some(site) = name.strip_prefix(&key) else {
            continue;
        };
        if let Ok(published) = serde_json::from_slice::<Published>(kv.value()) {
            let read = Read {
                published,
                revision: kv.mod_revision(),
                lease: kv.lease(),
            };
            sites.insert(site.to_owned(), read);
        }
    }
    Ok(sites)
}

/// Every guarded service's sites under `prefix` (for `anycastd fleet`): service -> site ->
/// record.
pub async fn fleet(
    client: &mut Client,
    prefix: &str,
) -> Result<BTreeMap<String, BTreeMap<String, Published>>, StoreError> {
    let root = format!("{prefix}/");
    let response = timed(
        "reading the fleet",
        client.get(root.clone(), Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let mut fleet: BTreeMap<String, BTreeMap<String, Published>> = BTreeMap::new();
    for kv in response.kvs() {
        let Ok(name) = kv.key_str() else { continue };
        let Some(rest) = name.strip_prefix(&root) else {
            continue;
        };
        let Some((service, site)) = rest.split_once("/sites/") else {
            continue;
        };
        if let Ok(published) = serde_json::from_slice::<Published>(kv.value()) {
            fleet
                .entry(service.to_owned())
                .or_default()
                .insert(site.to_owned(), published);
        }
    }
    Ok(fleet)
}

/// Put this site's record of `service` under `lease`.
pub async fn publish(
    client: &mut Client,
    settings: &Settings,
    service: &str,
    record: &Published,
    lease: i64,
) -> Result<(), StoreError> {
    let key = super::site_key(&settings.prefix, service, &settings.site);
    let value = serde_json::to_vec(record).map_err(|e| StoreError(e.to_string()))?;
    timed(
        "publishing",
        client.put(key, value, Some(PutOptions::new().with_lease(lease))),
    )
    .await
    .map(|_| ())
}

/// How many times a withdrawal counts again after its transaction lost a race.
const RECOUNTS: usize = 32;

/// Ask to withdraw `service` under `rule`: granted (this site's record is now `withdrawn`,
/// written by the same transaction that checked the count) or held (its record is now
/// `held`). See the module's doc for why two sites cannot both be granted past the minimum.
pub async fn ask(
    client: &mut Client,
    settings: &Settings,
    service: &str,
    rule: Rule,
    withdrawn: &Published,
    held: &Published,
    lease: i64,
) -> Result<super::Answer, StoreError> {
    let key = super::site_key(&settings.prefix, service, &settings.site);
    for _ in 0..RECOUNTS {
        let sites = sites(client, &settings.prefix, service).await?;
        let others: Vec<(&String, &Read)> = sites
            .iter()
            .filter(|(site, _)| **site != settings.site)
            .collect();
        let total = others.len() as u32 + 1;
        let announcing: Vec<(String, i64)> = others
            .iter()
            .filter(|(_, read)| read.published.state.announces())
            .map(|(site, read)| {
                (
                    super::site_key(&settings.prefix, service, site),
                    read.revision,
                )
            })
            .collect();
        let count = Count {
            others_announcing: announcing.len() as u32,
            sites: total,
            needed: rule.needed(total),
        };
        if !count.grants() {
            // Written only when it changes: a write is a watch event at every other site,
            // and held sites answering each other's unchanged records would ask again and
            // again, for ever (the fleet bench saw 50 writes a second between the three held
            // sites of five). The same record under another lease (this site's before a
            // restart, kept unchanged) is written again under this one: that lease ends.
            let own = sites.get(&settings.site);
            if own.map(|r| (&r.published, r.lease)) != Some((held, lease)) {
                publish(client, settings, service, held, lease).await?;
            }
            return Ok(super::Answer::Held(count));
        }
        let witnesses: Vec<Compare> = announcing
            .iter()
            .take(count.needed as usize)
            .map(|(k, revision)| Compare::mod_revision(k.clone(), CompareOp::Equal, *revision))
            .collect();
        let value = serde_json::to_vec(withdrawn).map_err(|e| StoreError(e.to_string()))?;
        let txn = Txn::new().when(witnesses).and_then(vec![TxnOp::put(
            key.clone(),
            value,
            Some(PutOptions::new().with_lease(lease)),
        )]);
        let response = timed("asking the fleet", client.txn(txn)).await?;
        if response.succeeded() {
            return Ok(super::Answer::Granted(count));
        }
        // A witness changed between the count and the commit: count again.
    }
    Err(StoreError(format!(
        "the count of {service} kept changing ({RECOUNTS} tries)"
    )))
}

/// What draining `service` at this site would leave: `Some(count)` when this site announces
/// it now and the other sites announcing would be fewer than the rule's minimum (`count` is
/// the fleet as read, this site included), `None` when the drain keeps the minimum or changes
/// nothing (this site does not announce it).
pub async fn below_minimum_if_drained(
    client: &mut Client,
    settings: &Settings,
    service: &str,
    rule: Rule,
) -> Result<Option<Count>, StoreError> {
    let sites = sites(client, &settings.prefix, service).await?;
    let announces_here = sites
        .get(&settings.site)
        .is_some_and(|r| r.published.state.announces());
    if !announces_here {
        return Ok(None);
    }
    let others = sites.keys().filter(|site| **site != settings.site).count() as u32;
    let count = Count {
        others_announcing: sites
            .iter()
            .filter(|(site, r)| **site != settings.site && r.published.state.announces())
            .count() as u32,
        sites: others + 1,
        needed: rule.needed(others + 1),
    };
    Ok((!count.grants()).then_some(count))
}

/// The states of the sites of `service`, counted (for the metrics).
pub fn tally(sites: &BTreeMap<String, Read>) -> BTreeMap<SiteState, u32> {
    let mut counts = BTreeMap::new();
    for read in sites.values() {
        *counts.entry(read.published.state).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_etcd_error_is_said_in_a_few_words() {
        let timeout = etcd_client::Error::GRpcStatus(tonic::Status::cancelled("Timeout expired"));
        assert_eq!(short(&timeout), "deadline exceeded");
        let deadline =
            etcd_client::Error::GRpcStatus(tonic::Status::deadline_exceeded("context deadline"));
        assert_eq!(short(&deadline), "deadline exceeded");
        let denied = etcd_client::Error::GRpcStatus(tonic::Status::permission_denied(
            "etcdserver: permission denied",
        ));
        assert_eq!(short(&denied), "permission denied");
        let password = etcd_client::Error::GRpcStatus(tonic::Status::invalid_argument(
            "etcdserver: authentication failed, invalid user ID or password",
        ));
        assert_eq!(
            short(&password),
            "authentication failed: invalid user ID or password"
        );
    }

    #[test]
    fn a_transport_failure_is_said_by_its_root_cause_not_the_status_debug_text() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "os error 111");
        let mut status = tonic::Status::unavailable("tcp connect error");
        status.set_source(std::sync::Arc::new(refused));
        assert_eq!(
            short(&etcd_client::Error::GRpcStatus(status)),
            "connection refused"
        );
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        let mut status = tonic::Status::unavailable("error trying to connect");
        status.set_source(std::sync::Arc::new(tls));
        assert_eq!(
            short(&etcd_client::Error::GRpcStatus(status)),
            "TLS handshake failed: etcd's certificate is not signed by the configured ca (invalid peer certificate: UnknownIssuer)"
        );
        // A CA of the same name that did not sign it: rustls finds the issuer, not the
        // signature.
        let same_name = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "invalid peer certificate: BadSignature",
        );
        let mut status = tonic::Status::unavailable("error trying to connect");
        status.set_source(std::sync::Arc::new(same_name));
        assert!(short(&etcd_client::Error::GRpcStatus(status)).starts_with(
            "TLS handshake failed: etcd's certificate is not signed by the configured ca"
        ));
        let plain = etcd_client::Error::GRpcStatus(tonic::Status::unknown(
            "h2 protocol error: connection closed",
        ));
        assert_eq!(short(&plain), "h2 protocol error: connection closed");
    }
}
