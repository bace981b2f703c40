//! The anycastd event journal: an append-only log in sled.
//!
//! Owns the on-disk format (module [`wire`] and the codec here) and the lock that makes one
//! process the journal's only writer. It must not know about tokio, FRR or HTTP: its API is
//! synchronous, and [`Committer`] is a plain thread that turns many appends into one flush
//! (group commit).
//!
//! Layout inside the sled database (a directory):
//! - tree `log`: key = sequence number (u64 big-endian), value = one encoded record;
//! - tree `by_service`: key = `service \0 seq` (big-endian), empty value: one service's
//!   records without a scan of the whole log;
//! - tree `last_state`: key = service, value = the last transition's state and whether it
//!   announced (read at start-up without a scan).
//!
//! A record value is `[format version byte][bincode(Body)]` with one pinned bincode
//! configuration per format version ([`codec`]). Records of an unknown version are skipped
//! and counted by readers, never treated as corruption.

#![forbid(unsafe_code)]

pub mod wire;

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use wire::Event;

/// The format version this build writes its records in (it reads 1 to 7; see [`wire`]). A
/// record of a kind added in format 4, 5, 6 or 7 carries that version instead
/// ([`wire::Event::format`]), so that a build that knows an older format skips only those.
pub const FORMAT_VERSION: u8 = 3;

/// The newest format version this build writes and reads.
pub const NEWEST_FORMAT_VERSION: u8 = 7;

/// The oldest format version this build reads.
pub const OLDEST_FORMAT_VERSION: u8 = 1;

/// Name of the lock file inside the journal directory.
pub const LOCK_FILE: &str = "anycastd.lock";

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another process holds the journal.
    #[error("journal {path} is locked by pid {pid}")]
    Locked {
        /// Journal directory.
        path: PathBuf,
        /// The holder's pid, as written in the lock file (0 if unreadable).
        pid: u32,
    },
    /// Filesystem error around the lock or directory.
    #[error("journal {path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// sled reported an error.
    #[error("journal storage: {0}")]
    Storage(#[from] sled::Error),
    /// A record could not be decoded.
    #[error("journal record {seq}: cannot decode: {reason}")]
    Corrupt {
        /// Its sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// A record could not be encoded (larger than the size limit).
    #[error("journal record cannot be encoded: {0}")]
    Encode(String),
    /// The committer thread is gone.
    #[error("journal committer stopped")]
    Closed,
}

/// The body of a record as stored (after the version byte).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Body {
    at_ms: i64,
    event: Event,
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The format version it was written in.
    pub version: u8,
    /// Global sequence number, from 1, increasing.
    pub seq: u64,
    /// UTC time, milliseconds since the epoch.
    pub at_ms: i64,
    /// What happened.
    pub event: Event,
}

/// What a reader finds at one position of the log.
// Entries are read one at a time and handed on: boxing the common case buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A record this build understands.
    Record(Record),
    /// A record written in a format version this build does not know (skipped, counted).
    UnknownVersion {
        /// Its sequence number.
        seq: u64,
        /// The version byte found.
        version: u8,
    },
}

/// The encoding of records. One place encodes and decodes.
pub mod codec {
    use super::*;
    use bincode::Options;

    /// Largest encoded record body accepted (format versions 1 to 3).
    pub const SIZE_LIMIT_V1: u64 = 1 << 20;

    /// The pinned bincode configuration of format versions 1 to 3 (version 2 only appends
    /// enum variants; version 3 changes the layout of one struct, read by version with
    /// [`wire::with_format`]).
    fn options_v1() -> impl bincode::Options {
        bincode::DefaultOptions::new()
            .with_varint_encoding()
            .with_little_endian()
            .with_limit(SIZE_LIMIT_V1)
            .reject_trailing_bytes()
    }

    /// Encode a record value (version byte + body).
    pub fn encode(at_ms: i64, event: &Event) -> Result<Vec<u8>, Error> {
        let body = Body {
            at_ms,
            event: event.clone(),
        };
        let mut bytes = vec![event.format()];
        options_v1()
            .serialize_into(&mut bytes, &body)
            .map_err(|e| Error::Encode(e.to_string()))?;
        Ok(bytes)
    }

    /// Decode a record value found at `seq`.
    pub fn decode(seq: u64, bytes: &[u8]) -> Result<Entry, Error> {
        match bytes.split_first() {
            None => Err(Error::Corrupt {
                seq,
                reason: "empty record".into(),
            }),
            Some((version @ (1..=NEWEST_FORMAT_VERSION), body)) => {
                let body: Body = wire::with_format(*version, || options_v1().deserialize(body))
                    .map_err(|e| Error::Corrupt {
                        seq,
                        reason: e.to_string(),
                    })?;
                if *version < body.event.introduced() {
                    return Err(Error::Corrupt {
                        seq,
                        reason: format!(
                            "a format {} record kind marked as format {version}",
                            body.event.introduced()
                        ),
                    });
                }
                Ok(Entry::Record(Record {
                    version: *version,
                    seq,
                    at_ms: body.at_ms,
                    event: body.event,
                }))
            }
            Some((version, _)) => Ok(Entry::UnknownVersion {
                seq,
                version: *version,
            }),
        }
    }

    /// The time of a record value without decoding its event (`None` when it is not a
    /// record of a known version, or too short).
    pub fn peek_time(bytes: &[u8]) -> Option<i64> {
        match bytes.split_first() {
            Some((1..=NEWEST_FORMAT_VERSION, body)) => bincode::DefaultOptions::new()
                .with_varint_encoding()
                .with_little_endian()
                .allow_trailing_bytes()
                .deserialize::<i64>(body)
                .ok(),
            _ => None,
        }
    }

    /// Encode a last-state value.
    pub fn encode_last(last: &LastState) -> Result<Vec<u8>, Error> {
        let mut bytes = vec![FORMAT_VERSION];
        options_v1()
            .serialize_into(&mut bytes, last)
            .map_err(|e| Error::Encode(e.to_string()))?;
        Ok(bytes)
    }

    /// Decode a last-state value (`None` for an unknown version).
    pub fn decode_last(bytes: &[u8]) -> Result<Option<LastState>, Error> {
        match bytes.split_first() {
            Some((version @ (1..=NEWEST_FORMAT_VERSION), body)) => {
                wire::with_format(*version, || options_v1().deserialize(body))
                    .map(Some)
                    .map_err(|e| Error::Corrupt {
                        seq: 0,
                        reason: format!("last state: {e}"),
                    })
            }
            Some(_) => Ok(None),
            None => Err(Error::Corrupt {
                seq: 0,
                reason: "empty last state".into(),
            }),
        }
    }
}

/// The last recorded state of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastState {
    /// Sequence number of the transition that set it.
    pub seq: u64,
    /// Its time.
    pub at_ms: i64,
    /// The state.
    pub state: wire::State,
    /// The service's prefixes at that moment.
    pub prefixes: Vec<wire::PrefixRef>,
}

/// Tuning of the underlying store.
#[derive(Debug, Clone)]
pub struct Options {
    /// sled page cache size (sled's default is 1 GiB; far too much for this daemon).
    pub cache_capacity_bytes: u64,
    /// Background flush period; durable appends flush explicitly anyway.
    pub flush_every_ms: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cache_capacity_bytes: 8 * 1024 * 1024,
            flush_every_ms: Some(500),
        }
    }
}

/// The lock held for as long as a [`Journal`] is open.
#[derive(Debug)]
struct Lock {
    _file: File,
}

impl Lock {
    fn take(dir: &Path) -> Result<Lock, Error> {
        let path = dir.join(LOCK_FILE);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                    pid: text.trim().parse().unwrap_or(0),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Lock { _file: file })
    }
}

/// An open journal. Only one process can hold it (a lock file in its directory).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    db: sled::Db,
    reader: Reader,
    options: Options,
    /// A write failed: nothing more is written until [`Journal::reopen`] succeeds.
    broken: bool,
    next_seq: u64,
    /// Records per service (index entries), counted on the first retention pass.
    service_counts: Option<std::collections::HashMap<String, u64>>,
    _lock: Lock,
}

/// The trees of one opened sled database.
#[derive(Debug, Clone)]
struct Trees {
    log: sled::Tree,
    by_service: sled::Tree,
    last_state: sled::Tree,
    meta: sled::Tree,
    damping: sled::Tree,
}

impl Trees {
    fn of(db: &sled::Db) -> Result<Trees, Error> {
        Ok(Trees {
            log: db.open_tree("log")?,
            by_service: db.open_tree("by_service")?,
            last_state: db.open_tree("last_state")?,
            meta: db.open_tree("meta")?,
            damping: db.open_tree("damping")?,
        })
    }
}

/// Read access to an open journal; cheap to clone, usable from any thread while the
/// [`Committer`] owns the [`Journal`]. It follows the journal when a write error makes the
/// journal reopen its store.
#[derive(Debug, Clone)]
pub struct Reader {
    trees: std::sync::Arc<std::sync::RwLock<Trees>>,
}

impl Reader {
    fn t(&self) -> Trees {
        self.trees.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Journal {
    /// A read handle that stays usable after the journal moves into a [`Committer`].
    pub fn reader_handle(&self) -> Reader {
        self.reader.clone()
    }
}

impl std::ops::Deref for Journal {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        &self.reader
    }
}

/// Key in the `meta` tree of the last `DaemonStarted` record.
const META_LAST_START: &[u8] = b"last_start";

fn index_key(service: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(service.len() + 9);
    key.extend_from_slice(service.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn value_with_seq(seq: u64, at_ms: i64, event: &Event) -> Result<Vec<u8>, Error> {
    let mut value = seq.to_be_bytes().to_vec();
    value.extend(codec::encode(at_ms, event)?);
    Ok(value)
}

/// The log entry an index item points at.
fn indexed(log: &sled::Tree, item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<Entry, Error> {
    let (key, _) = item?;
    let seq = seq_of(&key);
    match log.get(seq.to_be_bytes())? {
        Some(value) => codec::decode(seq, &value),
        None => Err(Error::Corrupt {
            seq,
            reason: "indexed record missing from the log".into(),
        }),
    }
}

fn seq_of(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let tail = &key[key.len().saturating_sub(8)..];
    bytes[8 - tail.len()..].copy_from_slice(tail);
    u64::from_be_bytes(bytes)
}

impl Journal {
    /// Open (or create) the journal in directory `path`, taking its lock first.
    pub fn open(path: &Path, options: &Options) -> Result<Journal, Error> {
        std::fs::create_dir_all(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let lock = Lock::take(path)?;
        let db = sled::Config::new()
            .path(path.join("db"))
            .cache_capacity(options.cache_capacity_bytes)
            .flush_every_ms(options.flush_every_ms)
            .open()?;
        let trees = Trees::of(&db)?;
        let next_seq = match trees.log.last()? {
            Some((key, _)) => seq_of(&key) + 1,
            None => 1,
        };
        Ok(Journal {
            path: path.to_path_buf(),
            db,
            reader: Reader {
                trees: std::sync::Arc::new(std::sync::RwLock::new(trees)),
            },
            options: options.clone(),
            broken: false,
            next_seq,
            service_counts: None,
            _lock: lock,
        })
    }

    /// The journal's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Append records at time `at_ms` (not yet durable: see [`Journal::flush`]). Returns the
    /// sequence number of the last one.
    pub fn append(&mut self, at_ms: i64, events: &[Event]) -> Result<u64, Error> {
        if self.broken {
            return Err(Error::Closed);
        }
        let result = self.append_unchecked(at_ms, events);
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    fn append_unchecked(&mut self, at_ms: i64, events: &[Event]) -> Result<u64, Error> {
        let trees = self.reader.t();
        let t = &trees;
        let mut last = self.next_seq.saturating_sub(1);
        for event in events {
            let seq = self.next_seq;
            let value = codec::encode(at_ms, event)?;
            t.log.insert(seq.to_be_bytes(), value)?;
            // Records about no service (daemon start/stop, reconciliation, operator actions)
            // are indexed under the empty name, which no service can have.
            let service = event.service().unwrap_or("");
            t.by_service.insert(index_key(service, seq), &[])?;
            if let Some(counts) = self.service_counts.as_mut() {
                *counts.entry(service.to_owned()).or_default() += 1;
            }
            if let Event::Damping(d) = event {
                // Kept like the last state: retention never deletes it.
                t.damping
                    .insert(d.service.as_bytes(), value_with_seq(seq, at_ms, event)?)?;
            }
            if let Event::DaemonStarted(_) = event {
                t.meta
                    .insert(META_LAST_START, value_with_seq(seq, at_ms, event)?)?;
            }
            if let Event::Transition(t) = event {
                let last_state = LastState {
                    seq,
                    at_ms,
                    state: t.to.clone(),
                    prefixes: t.prefixes.clone(),
                };
                trees
                    .last_state
                    .insert(t.service.as_bytes(), codec::encode_last(&last_state)?)?;
            }
            self.next_seq += 1;
            last = seq;
        }
        Ok(last)
    }

    /// Make every appended record durable (fsync). Returns the bytes flushed.
    pub fn flush(&mut self) -> Result<usize, Error> {
        if self.broken {
            return Err(Error::Closed);
        }
        let result = self.db.flush().map_err(Error::from);
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// Whether a write failed and the store must be reopened before the next write.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// After a write error (a full disk): drop the failed store and open it again. Readers
    /// follow. Fails (and may be tried again later) while the disk is still full or a reader
    /// still holds the old store.
    pub fn reopen(&mut self) -> Result<(), Error> {
        // Let go of the failed store first: sled locks its files.
        let placeholder = sled::Config::new().temporary(true).open()?;
        *self.reader.trees.write().unwrap_or_else(|p| p.into_inner()) = Trees::of(&placeholder)?;
        self.db = placeholder;
        let db = sled::Config::new()
            .path(self.path.join("db"))
            .cache_capacity(self.options.cache_capacity_bytes)
            .flush_every_ms(self.options.flush_every_ms)
            .open()?;
        let trees = Trees::of(&db)?;
        let next_seq = match trees.log.last()? {
            Some((key, _)) => seq_of(&key) + 1,
            None => 1,
        };
        // Never reuse a sequence number handed out before the failure.
        self.next_seq = self.next_seq.max(next_seq);
        *self.reader.trees.write().unwrap_or_else(|p| p.into_inner()) = trees;
        self.db = db;
        self.service_counts = None;
        self.broken = false;
        Ok(())
    }
}

impl Reader {
    /// The last `DaemonStarted` record (its boot id tells whether the host rebooted since).
    pub fn last_start(&self) -> Result<Option<(u64, wire::DaemonStarted)>, Error> {
        let Some(value) = self.t().meta.get(META_LAST_START)? else {
            return Ok(None);
        };
        if value.len() < 8 {
            return Ok(None);
        }
        let (seq_bytes, record) = value.split_at(8);
        let seq = seq_of(seq_bytes);
        match codec::decode(seq, record)? {
            Entry::Record(Record {
                event: Event::DaemonStarted(started),
                ..
            }) => Ok(Some((seq, started))),
            _ => Ok(None),
        }
    }

    /// The first sequence number whose record is at or after `at_ms` (records are appended in
    /// time order, so this is a binary search, not a scan).
    pub fn seq_at_or_after(&self, at_ms: i64) -> Result<u64, Error> {
        let log = self.t().log;
        let (Some((first, _)), Some((last, _))) = (log.first()?, log.last()?) else {
            return Ok(1);
        };
        let (mut low, mut high) = (seq_of(&first), seq_of(&last) + 1);
        while low < high {
            let mid = low + (high - low) / 2;
            let Some((key, value)) = log.range(mid.to_be_bytes()..).next().transpose()? else {
                high = mid;
                continue;
            };
            let found = seq_of(&key);
            let before = match codec::decode(found, &value) {
                Ok(Entry::Record(r)) => r.at_ms < at_ms,
                _ => true,
            };
            if before {
                low = found + 1;
            } else {
                high = mid;
            }
        }
        Ok(low)
    }

    /// Every entry from sequence number `from` on whose time is at least `at_least_ms`, in
    /// order: older records are skipped without decoding their events.
    pub fn entries_from_at(
        &self,
        from: u64,
        at_least_ms: i64,
    ) -> impl Iterator<Item = Result<Entry, Error>> + '_ {
        self.t()
            .log
            .range(from.to_be_bytes()..)
            .filter_map(move |item| match item {
                Ok((key, value)) => {
                    if codec::peek_time(&value).is_some_and(|at| at < at_least_ms) {
                        return None;
                    }
                    Some(codec::decode(seq_of(&key), &value))
                }
                Err(e) => Some(Err(e.into())),
            })
    }

    /// Every entry from sequence number `from` on, in order.
    pub fn entries_from(&self, from: u64) -> impl Iterator<Item = Result<Entry, Error>> + '_ {
        self.t().log.range(from.to_be_bytes()..).map(|item| {
            let (key, value) = item?;
            codec::decode(seq_of(&key), &value)
        })
    }

    /// The entries of one service, in order, without scanning other services' records.
    pub fn service_entries<'a>(
        &'a self,
        service: &str,
    ) -> impl Iterator<Item = Result<Entry, Error>> + 'a {
        let mut prefix = service.as_bytes().to_vec();
        prefix.push(0);
        let t = self.t();
        let log = t.log.clone();
        t.by_service
            .scan_prefix(prefix)
            .map(move |item| indexed(&log, item))
    }

    /// The entries about no service in particular (daemon start/stop, reconciliation,
    /// operator actions), in order.
    pub fn global_entries(&self) -> impl Iterator<Item = Result<Entry, Error>> + '_ {
        self.service_entries("")
    }

    /// The daemon's own entries, newest first.
    pub fn global_entries_rev(&self) -> impl Iterator<Item = Result<Entry, Error>> + '_ {
        self.service_entries_rev("")
    }

    /// Every entry, newest first.
    pub fn entries_rev(&self) -> impl Iterator<Item = Result<Entry, Error>> + '_ {
        self.t().log.iter().rev().map(|item| {
            let (key, value) = item?;
            codec::decode(seq_of(&key), &value)
        })
    }

    /// The entries of one service (`""`: the daemon's own), newest first.
    pub fn service_entries_rev<'a>(
        &'a self,
        service: &str,
    ) -> impl Iterator<Item = Result<Entry, Error>> + 'a {
        let mut prefix = service.as_bytes().to_vec();
        prefix.push(0);
        let t = self.t();
        let log = t.log.clone();
        t.by_service
            .scan_prefix(prefix)
            .rev()
            .map(move |item| indexed(&log, item))
    }

    /// The last damping state of every service that had one.
    pub fn damping_states(&self) -> Result<Vec<wire::DampingRecord>, Error> {
        let mut states = Vec::new();
        for item in self.t().damping.iter() {
            let (_, value) = item?;
            if value.len() < 8 {
                continue;
            }
            let (seq_bytes, record) = value.split_at(8);
            if let Entry::Record(Record {
                event: Event::Damping(d),
                ..
            }) = codec::decode(seq_of(seq_bytes), record)?
            {
                states.push(d);
            }
        }
        Ok(states)
    }

    /// The last recorded state of every service that ever had a transition.
    pub fn last_states(&self) -> Result<Vec<(String, LastState)>, Error> {
        let mut states = Vec::new();
        for item in self.t().last_state.iter() {
            let (key, value) = item?;
            if let Some(last) = codec::decode_last(&value)? {
                states.push((String::from_utf8_lossy(&key).into_owned(), last));
            }
        }
        Ok(states)
    }
}

/// How much of the journal to keep. The last state of each service is never deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Records older than this are deleted.
    pub max_age_ms: Option<i64>,
    /// At most this many records per service (daemon records count as one more service).
    pub max_per_service: u64,
    /// At most this many records in all.
    pub max_records: u64,
}

impl Journal {
    /// Delete what the retention policy no longer keeps; returns the number deleted.
    pub fn enforce(&mut self, policy: &Retention, now_ms: i64) -> Result<u64, Error> {
        let mut deleted = 0;
        // Global: oldest first, by count and by age.
        let keep_from_seq = self.next_seq.saturating_sub(policy.max_records);
        let cutoff = policy.max_age_ms.map(|age| now_ms.saturating_sub(age));
        loop {
            let t = self.reader.t();
            let Some((key, value)) = t.log.first()? else {
                break;
            };
            let seq = seq_of(&key);
            let (service, at_ms) = match codec::decode(seq, &value) {
                Ok(Entry::Record(r)) => (r.event.service().unwrap_or("").to_owned(), Some(r.at_ms)),
                _ => (String::new(), None),
            };
            let too_many = seq < keep_from_seq;
            let too_old = matches!((cutoff, at_ms), (Some(c), Some(at)) if at < c);
            if !(too_many || too_old) {
                break;
            }
            t.log.remove(&key)?;
            t.by_service.remove(index_key(&service, seq))?;
            if let Some(count) = self
                .service_counts
                .as_mut()
                .and_then(|c| c.get_mut(&service))
            {
                *count = count.saturating_sub(1);
            }
            deleted += 1;
        }
        // Per service, by count.
        if self.service_counts.is_none() {
            let mut counts: std::collections::HashMap<String, u64> =
                std::collections::HashMap::new();
            for item in self.reader.t().by_service.iter() {
                let (key, _) = item?;
                let name = &key[..key.len().saturating_sub(9)];
                *counts
                    .entry(String::from_utf8_lossy(name).into_owned())
                    .or_default() += 1;
            }
            self.service_counts = Some(counts);
        }
        let over: Vec<(String, u64)> = self
            .service_counts
            .iter()
            .flatten()
            .filter(|(_, n)| **n > policy.max_per_service)
            .map(|(s, n)| (s.clone(), n - policy.max_per_service))
            .collect();
        for (service, excess) in over {
            let mut prefix = service.as_bytes().to_vec();
            prefix.push(0);
            let t = self.reader.t();
            let keys: Vec<sled::IVec> = t
                .by_service
                .scan_prefix(&prefix)
                .keys()
                .take(excess as usize)
                .collect::<Result<_, _>>()?;
            for key in keys {
                t.log.remove(seq_of(&key).to_be_bytes())?;
                t.by_service.remove(&key)?;
                deleted += 1;
            }
            if let Some(count) = self
                .service_counts
                .as_mut()
                .and_then(|c| c.get_mut(&service))
            {
                *count = count.saturating_sub(excess);
            }
        }
        Ok(deleted)
    }
}

/// Called once with the outcome of a submitted batch: the sequence number of its last record.
pub type Done = Box<dyn FnOnce(Result<u64, String>) + Send>;

/// Called with every record once it is written (and, for durable ones, flushed).
pub type Tap = Box<dyn Fn(&Record) + Send>;

struct Request {
    at_ms: i64,
    events: Vec<Event>,
    durable: bool,
    done: Option<Done>,
}

/// A thread that owns the [`Journal`] and commits in groups: every request waiting when it
/// wakes is appended, then one flush covers all the durable ones before any of them is
/// answered.
pub struct Committer {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<Journal>>,
    flushes: Arc<AtomicU64>,
}

impl Committer {
    /// Start the committer thread for `journal`.
    pub fn start(journal: Journal) -> Committer {
        Committer::start_with_tap(journal, None)
    }

    /// Start the committer thread; `tap` sees every record after it is committed.
    pub fn start_with_tap(journal: Journal, tap: Option<Tap>) -> Committer {
        Committer::start_with(journal, tap, None)
    }

    /// Start the committer thread with a tap and a retention policy, enforced every
    /// [`RETENTION_PERIOD`] (and at start).
    pub fn start_with(
        journal: Journal,
        tap: Option<Tap>,
        retention: Option<Retention>,
    ) -> Committer {
        let (tx, rx) = mpsc::channel::<Request>();
        let flushes = Arc::new(AtomicU64::new(0));
        let counter = flushes.clone();
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || commit_loop(journal, rx, tap, retention, &counter))
            .ok();
        Committer {
            tx: Some(tx),
            thread,
            flushes,
        }
    }

    /// Group-commit flushes (fsyncs) so far.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Submit records. With `durable`, `done` is called only after they are flushed.
    pub fn submit(&self, at_ms: i64, events: Vec<Event>, durable: bool, done: Option<Done>) {
        let request = Request {
            at_ms,
            events,
            durable,
            done,
        };
        let failed = match &self.tx {
            Some(tx) => tx.send(request).err().map(|e| e.0),
            None => Some(request),
        };
        if let Some(Request {
            done: Some(done), ..
        }) = failed
        {
            done(Err(Error::Closed.to_string()));
        }
    }

    /// Stop the thread after everything submitted is written and flushed; returns the journal.
    pub fn close(mut self) -> Option<Journal> {
        self.tx.take();
        self.thread.take().and_then(|t| t.join().ok())
    }
}

/// A durable append within this time of the last flush is part of a burst.
pub const GATHER_BURST: std::time::Duration = std::time::Duration::from_millis(20);
/// In a burst, the flush waits until no append came for this long...
pub const GATHER_QUIET: std::time::Duration = std::time::Duration::from_millis(1);
/// ... (this long once the batch holds [`GATHER_MASS`] appends: a mass failure arrives
/// unevenly, as connections to a dead server fail one after another) ...
pub const GATHER_QUIET_MASS: std::time::Duration = std::time::Duration::from_millis(5);
/// ... or this long at most.
pub const GATHER_MAX: std::time::Duration = std::time::Duration::from_millis(100);
/// A gathered batch this large is a mass event (see [`GATHER_QUIET_MASS`]).
pub const GATHER_MASS: usize = 32;

/// How often the committer enforces retention.
pub const RETENTION_PERIOD: std::time::Duration = std::time::Duration::from_secs(60);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn commit_loop(
    mut journal: Journal,
    rx: mpsc::Receiver<Request>,
    tap: Option<Tap>,
    retention: Option<Retention>,
    flushes: &AtomicU64,
) -> Journal {
    let mut pending_gap: Option<wire::JournalGap> = None;
    let mut last_flush: Option<std::time::Instant> = None;
    // The first pass counts every service's records: keep it away from start-up.
    let mut next_retention = std::time::Instant::now() + RETENTION_PERIOD;
    loop {
        if let Some(policy) = &retention {
            if std::time::Instant::now() >= next_retention {
                // Retention never blocks appends for long: it runs between batches.
                let _ = journal.enforce(policy, now_ms());
                next_retention = std::time::Instant::now() + RETENTION_PERIOD;
            }
        }
        let first = match rx.recv_timeout(RETENTION_PERIOD) {
            Ok(first) => first,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        while let Ok(next) = rx.try_recv() {
            batch.push(next);
        }
        // In a burst of durable appends (one flushed moments ago), gather the rest of the
        // burst before the next flush, so that a thousand services failing together cost
        // two fsyncs (the first failure's, at once, and the rest's), not a thousand. A lone
        // durable append after a quiet period is flushed at once.
        if batch.iter().any(|r| r.durable)
            && last_flush.is_some_and(|at: std::time::Instant| at.elapsed() < GATHER_BURST)
        {
            let until = std::time::Instant::now() + GATHER_MAX;
            loop {
                let left = until.saturating_duration_since(std::time::Instant::now());
                let quiet = if batch.len() >= GATHER_MASS {
                    GATHER_QUIET_MASS
                } else {
                    GATHER_QUIET
                };
                match rx.recv_timeout(left.min(quiet)) {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
        }
        if journal.broken() {
            // A write failed earlier (a full disk): try a fresh store; until it opens, every
            // record is counted as lost.
            let _ = journal.reopen();
        }
        if let Some(gap) = &pending_gap {
            // Writes work again? Say first what was lost.
            let event = Event::JournalGap(gap.clone());
            if journal
                .append(now_ms(), std::slice::from_ref(&event))
                .is_ok()
            {
                pending_gap = None;
            }
        }
        let mut results: Vec<Result<u64, String>> = batch
            .iter()
            .map(|r| {
                journal
                    .append(r.at_ms, &r.events)
                    .map_err(|e| e.to_string())
            })
            .collect();
        if batch.iter().any(|r| r.durable) {
            flushes.fetch_add(1, Ordering::Relaxed);
            let flushed = journal.flush();
            last_flush = Some(std::time::Instant::now());
            if let Err(e) = flushed {
                let text = e.to_string();
                for (request, result) in batch.iter().zip(results.iter_mut()) {
                    if request.durable && result.is_ok() {
                        *result = Err(text.clone());
                    }
                }
            }
        }
        for (request, result) in batch.iter().zip(&results) {
            if let Err(error) = result {
                let at = request.at_ms;
                let gap = pending_gap.get_or_insert(wire::JournalGap {
                    from_ms: at,
                    to_ms: at,
                    lost_records: 0,
                    error: String::new(),
                });
                gap.to_ms = at;
                gap.lost_records += request.events.len() as u64;
                gap.error = error.clone();
            }
        }
        for (request, result) in batch.into_iter().zip(results) {
            if let (Some(tap), Ok(last)) = (&tap, &result) {
                let first = last + 1 - request.events.len() as u64;
                for (i, event) in request.events.iter().enumerate() {
                    tap(&Record {
                        version: event.format(),
                        seq: first + i as u64,
                        at_ms: request.at_ms,
                        event: event.clone(),
                    });
                }
            }
            if let Some(done) = request.done {
                done(result);
            }
        }
    }
    let _ = journal.flush();
    journal
}
