//! Check polling: one scheduler task per target (a Cabourotte server; any [`Probe`]'s
//! target) drives every check of that target, whatever its kind.
//!
//! - The first poll of a check is at once; the next ones fall on a grid shared by every check
//!   of the same interval (one timer wake-up serves a whole round, and a dying server shows in
//!   every check within one round). The second poll is on the first grid point after the
//!   first, wherever the check was added between two points: no gap between polls exceeds the
//!   interval, and N intervals never hold more than N+1 polls of a check.
//! - At most [`Gate::max_in_flight`] polls are in flight per target; the checks
//!   falling due meanwhile wait their turn in order. A failure is an observation like any
//!   other: the next poll is at the next grid point (no hot retry). A check that falls due
//!   while its poll is still running is polled again as soon as that poll ends, once for the
//!   latest grid point passed: never more than one poll per grid point.
//! - A check waiting for a turn longer than its timeout fails at once ("... already in
//!   flight") if the server has answered nothing for a whole timeout, and in any case after
//!   [`SLOT_WAIT_TIMEOUTS`] timeouts: queueing behind a slow but answering target is waited
//!   for, a silent one is not.
//!
//! - A result carries the time its poll was due (its grid point, as wall-clock milliseconds
//!   from one origin read at the first poll, so every check due together gets the same
//!   millisecond), not the time its answer arrived: the journal keeps a steady check's
//!   results as runs `interval` apart ([`crate::service::record`]).
//!
//! A [`Watch`] is one registered check; dropping it stops its polls (a reload replaces the
//! watches of a service together with the channel they deliver to, so no result of an old
//! check list arrives under a new index). One task per server instead of one per check: at
//! 2,000 checks, no per-check timer, task or connection-slot wait (BENCHMARKS.md).

use super::{Gate, Observation, Polled, Probe, SLOT_WAIT_TIMEOUTS};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The schedulers of every target the checks use (cheap to clone).
#[derive(Clone, Default)]
pub struct Polling {
    servers: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

/// One polled check; dropping it stops the polls.
#[derive(Debug)]
pub struct Watch {
    id: u64,
    server: mpsc::UnboundedSender<Message>,
}

impl Watch {
    /// Poll from now on every `interval` (a service confirming a rise or a fall polls its
    /// checks faster): the next poll is on the new grid, one interval after the last.
    pub fn set_interval(&self, interval: Duration) {
        let _ = self.server.send(Message::Interval(self.id, interval));
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.server.send(Message::Remove(self.id));
    }
}

/// What a server's scheduler is told.
pub enum Message {
    /// Poll a new check.
    Add(u64, Box<Registration>),
    /// Stop polling a check.
    Remove(u64),
    /// Poll a check at another interval.
    Interval(u64, Duration),
}

/// A check to poll and where its results go.
pub struct Registration {
    check: Box<dyn Probe>,
    interval: Duration,
    index: usize,
    sink: Results,
}

impl Polling {
    /// No scheduler yet: the first check of a target starts that target's.
    pub fn new() -> Polling {
        Polling::default()
    }

    /// Poll `check` every `interval`, delivering what it sees to `sink` as check `index`,
    /// until the returned watch is dropped. Must be called within the runtime.
    pub fn watch(
        &self,
        check: Box<dyn Probe>,
        interval: Duration,
        index: usize,
        sink: Results,
    ) -> Watch {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let origin = check.target().to_owned();
        let gate = check.gate();
        let mut message = Message::Add(
            id,
            Box::new(Registration {
                check,
                interval,
                index,
                sink,
            }),
        );
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let server = servers
                .entry(origin.clone())
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(Scheduler::new(gate.clone(), origin.clone()).run(rx));
                    tx
                })
                .clone();
            match server.send(message) {
                Ok(()) => return Watch { id, server },
                // The scheduler is gone (it cannot end while registered, but never lose a
                // check): start a fresh one.
                Err(mpsc::error::SendError(back)) => {
                    servers.remove(&origin);
                    message = back;
                }
            }
        }
    }
}

/// The grid's origin: a monotonic instant and its wall-clock time (µs since the epoch), read
/// together at the process's first use, and read again when the wall clock steps.
struct Origin {
    instant: Instant,
    wall_us: std::sync::atomic::AtomicI64,
}

fn origin(now: Instant) -> &'static Origin {
    static ORIGIN: std::sync::OnceLock<Origin> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(|| Origin {
        instant: now,
        wall_us: std::sync::atomic::AtomicI64::new(
            chrono::Utc::now().timestamp_micros()
                - micros(Instant::now().saturating_duration_since(now)),
        ),
    })
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The first instant after `now` on the grid of `interval` steps from the process's first
/// call (so all checks with the same interval fall due together).
pub fn next_grid_point(now: Instant, interval: Duration) -> Instant {
    grid_point_after(origin(now).instant, now, interval)
}

/// The first instant strictly after `now` on the grid of `interval` steps through `origin`
/// (the grid runs both ways: `now` may be before the origin).
fn grid_point_after(origin: Instant, now: Instant, interval: Duration) -> Instant {
    let step = interval.as_nanos().max(1);
    let nanos = |n: u128| Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX));
    if now >= origin {
        let steps = (now - origin).as_nanos() / step + 1;
        origin + nanos(steps.saturating_mul(step))
    } else {
        // The latest point before the origin that is still after `now`.
        let steps = ((origin - now).as_nanos() - 1) / step;
        origin - nanos(steps * step)
    }
}

/// When a check falls due after the poll that stood for `slot`. After its first poll (at
/// once, wherever between two grid points the check was added), the first grid point after
/// it: the gap is never longer than an interval (the first point *at least* an interval
/// later left every check added after the grid's origin blind for up to two intervals after
/// each start). After that, one interval after its grid point.
fn next_due(origin: Instant, slot: Instant, interval: Duration, first: bool) -> Instant {
    if first {
        grid_point_after(origin, slot, interval)
    } else {
        slot + interval
    }
}

/// A wall-clock step larger than this moves the grid's wall-clock origin.
const CLOCK_STEP_US: i64 = 20_000;

/// The wall-clock time (ms since the epoch) of a monotonic instant: the origin's wall-clock
/// time plus the monotonic time since it, so that every check's grid points map to exact,
/// equal milliseconds (both clocks are slewed alike by NTP; a step of the wall clock moves the
/// origin once).
pub fn wall_ms(at: Instant) -> i64 {
    let now = Instant::now();
    let origin = origin(now);
    let mut wall_origin = origin.wall_us.load(std::sync::atomic::Ordering::Relaxed);
    let actual_now = chrono::Utc::now().timestamp_micros();
    let expected_now = wall_origin + micros(now.saturating_duration_since(origin.instant));
    if (actual_now - expected_now).abs() > CLOCK_STEP_US {
        wall_origin = actual_now - micros(now.saturating_duration_since(origin.instant));
        origin
            .wall_us
            .store(wall_origin, std::sync::atomic::Ordering::Relaxed);
    }
    let at_us = if at >= origin.instant {
        wall_origin.saturating_add(micros(at - origin.instant))
    } else {
        wall_origin.saturating_sub(micros(origin.instant - at))
    };
    at_us.div_euclid(1000)
}

/// Where a check is in its cycle.
enum Phase {
    /// Waiting for its next grid point.
    Idle { due: Instant },
    /// Due, waiting for a connection slot since `since`.
    Queued { since: Instant },
    /// Its request (and the delivery of its result) is running.
    Running,
}

struct Entry {
    /// `None` while running (the running poll owns it).
    check: Option<Box<dyn Probe>>,
    interval: Duration,
    index: usize,
    sink: Results,
    phase: Phase,
    /// The grid point the running or last poll stood for.
    slot: Instant,
    /// Whether it has been polled at all.
    polled: bool,
}

type Running = Pin<Box<dyn Future<Output = (u64, Box<dyn Probe>)> + Send>>;

struct Scheduler {
    gate: Arc<Gate>,
    origin: String,
    entries: BTreeMap<u64, Entry>,
    queue: VecDeque<u64>,
    running: FuturesUnordered<Running>,
    /// When something falls due next (`None`: nothing to wait for).
    wake: Option<Instant>,
}

/// How far away an unarmed timer is set (it is re-armed before it could fire).
const FAR: Duration = Duration::from_secs(86_400);

impl Scheduler {
    fn new(gate: Arc<Gate>, origin: String) -> Scheduler {
        Scheduler {
            gate,
            origin,
            entries: BTreeMap::new(),
            queue: VecDeque::new(),
            running: FuturesUnordered::new(),
            wake: None,
        }
    }

    async fn run(mut self, mut messages: mpsc::UnboundedReceiver<Message>) {
        // One timer, moved only when the next wake changes (once a round, not once a poll).
        let timer = tokio::time::sleep(FAR);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            if armed != self.wake {
                armed = self.wake;
                timer
                    .as_mut()
                    .reset(self.wake.unwrap_or_else(|| Instant::now() + FAR));
            }
            tokio::select! {
                message = messages.recv() => match message {
                    Some(Message::Add(id, registration)) => self.add(id, *registration),
                    Some(Message::Remove(id)) => self.remove(id),
                    Some(Message::Interval(id, interval)) => self.set_interval(id, interval),
                    None => return,
                },
                Some((id, check)) = self.running.next(), if !self.running.is_empty() => {
                    self.finished(id, Some(check));
                }
                () = &mut timer, if self.wake.is_some() => self.tick(),
            }
            self.start_queued();
        }
    }

    fn add(&mut self, id: u64, registration: Registration) {
        let now = Instant::now();
        self.entries.insert(
            id,
            Entry {
                check: Some(registration.check),
                interval: registration.interval,
                index: registration.index,
                sink: registration.sink,
                phase: Phase::Queued { since: now },
                slot: now,
                polled: false,
            },
        );
        self.queue.push_back(id);
        self.wake_at(now + registration_timeout(&self.entries, id));
    }

    fn remove(&mut self, id: u64) {
        if let Some(entry) = self.entries.remove(&id) {
            if matches!(entry.phase, Phase::Queued { .. }) {
                self.queue.retain(|queued| *queued != id);
            }
        }
        // A running poll of a removed check ends by itself; its result is not delivered
        // (the receiver went with the watch) and `finished` ignores it.
    }

    fn set_interval(&mut self, id: u64, interval: Duration) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if entry.interval == interval || interval.is_zero() {
            return;
        }
        entry.interval = interval;
        // A queued or running check takes it when its poll ends (`finished`); an idle one
        // is next due at the first point of the new grid after its last poll (which may have
        // passed: then at once). So the gap between two polls is at most the larger
        // interval.
        if let (Phase::Idle { .. }, true) = (&entry.phase, entry.polled) {
            let due = next_grid_point(entry.slot, interval);
            entry.phase = Phase::Idle { due };
            self.wake = None;
            self.wake_at(due);
            // Other entries' wakes are recomputed at the next tick; make it no later than
            // theirs by waking at the earliest of all.
            let earliest = self
                .entries
                .values()
                .filter_map(|e| match e.phase {
                    Phase::Idle { due } => Some(due),
                    Phase::Queued { since } => Some(since),
                    Phase::Running => None,
                })
                .min();
            if let Some(at) = earliest {
                self.wake_at(at);
            }
        }
    }

    fn wake_at(&mut self, at: Instant) {
        self.wake = Some(self.wake.map_or(at, |wake| wake.min(at)));
    }

    /// A poll (or a delivery without one) ended: the check waits for its next grid point.
    fn finished(&mut self, id: u64, check: Option<Box<dyn Probe>>) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if let Some(check) = check {
            entry.check = Some(check);
        }
        let now = Instant::now();
        let mut due = next_due(
            origin(entry.slot).instant,
            entry.slot,
            entry.interval,
            !entry.polled,
        );
        entry.polled = true;
        if due <= now {
            // It fell due while running (a long queue, a slow answer): poll again at once
            // for the latest grid point passed; the ones before it are skipped.
            let latest = next_grid_point(now, entry.interval)
                .checked_sub(entry.interval)
                .unwrap_or(due);
            due = due.max(latest);
            entry.slot = due;
            entry.phase = Phase::Queued { since: now };
            let timeout = entry
                .check
                .as_ref()
                .map(|c| c.timeout())
                .unwrap_or_default();
            self.queue.push_back(id);
            self.wake_at(now + timeout);
            return;
        }
        entry.phase = Phase::Idle { due };
        self.wake_at(due);
    }

    /// Queue the checks that fell due; fail the ones that waited too long; plan the next wake.
    fn tick(&mut self) {
        let now = Instant::now();
        self.wake = None;
        for (id, entry) in &mut self.entries {
            if let Phase::Idle { due } = entry.phase {
                if due <= now {
                    entry.phase = Phase::Queued { since: now };
                    entry.slot = due;
                    self.queue.push_back(*id);
                }
            }
        }
        let gate = self.gate.clone();
        let mut failed = Vec::new();
        self.queue.retain(|id| {
            let Some(entry) = self.entries.get(id) else {
                return false;
            };
            let (Phase::Queued { since }, Some(check)) = (&entry.phase, &entry.check) else {
                return false;
            };
            let timeout = check.timeout();
            let waited = now.saturating_duration_since(*since);
            let give_up = waited >= timeout
                && (!gate.answered_within(timeout) || waited >= timeout * SLOT_WAIT_TIMEOUTS);
            if give_up {
                failed.push(*id);
            }
            !give_up
        });
        for id in failed {
            self.fail_waiting(id);
        }
        let mut wake: Option<Instant> = None;
        for entry in self.entries.values() {
            let at = match (&entry.phase, &entry.check) {
                (Phase::Idle { due }, _) => *due,
                (Phase::Queued { since }, Some(check)) => {
                    // The next whole timeout of its wait.
                    let timeout = check.timeout().max(Duration::from_millis(1));
                    let waited = now.saturating_duration_since(*since);
                    let whole = u32::try_from(waited.as_nanos() / timeout.as_nanos())
                        .unwrap_or(u32::MAX)
                        .saturating_add(1);
                    *since + timeout.saturating_mul(whole)
                }
                _ => continue,
            };
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        self.wake = wake;
    }

    /// Fail a check that waited too long for a connection slot, without a request.
    fn fail_waiting(&mut self, id: u64) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let timeout = entry
            .check
            .as_ref()
            .map(|c| c.timeout())
            .unwrap_or_default();
        entry.phase = Phase::Running;
        let polled = Polled {
            check: entry.index,
            took: Duration::ZERO,
            observation: Observation::Fail(format!(
                "no answer within {} ms ({} requests to {} already in flight)",
                timeout.as_millis(),
                self.gate.max_in_flight(),
                self.origin
            )),
            at_ms: wall_ms(entry.slot),
        };
        entry.sink.send(polled);
        self.finished(id, None);
    }

    /// Start the queued checks, in order, while connection slots are free.
    fn start_queued(&mut self) {
        while self.running.len() < self.gate.max_in_flight() {
            let Some(id) = self.queue.pop_front() else {
                return;
            };
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            let Some(mut check) = entry.check.take() else {
                continue;
            };
            entry.phase = Phase::Running;
            let sink = entry.sink.clone();
            let index = entry.index;
            // The result's time is when its poll was due (its grid point): the results of a
            // steady check fall exactly an interval apart, whatever the queue and the server
            // take, which is what lets the journal keep them as runs (service::record).
            let due_ms = wall_ms(entry.slot);
            self.running.push(Box::pin(async move {
                let started = std::time::Instant::now();
                let observation = check.poll().await;
                let polled = Polled {
                    check: index,
                    took: started.elapsed(),
                    observation,
                    at_ms: due_ms,
                };
                sink.send(polled);
                (id, check)
            }));
        }
    }
}

fn registration_timeout(entries: &BTreeMap<u64, Entry>, id: u64) -> Duration {
    entries
        .get(&id)
        .and_then(|e| e.check.as_ref())
        .map(|c| c.timeout())
        .unwrap_or(Duration::from_secs(1))
}

/// The sending side of a service's results (one per service, cloned for each of its checks).
#[derive(Clone, Debug)]
pub struct Results(Arc<Inbox>);

/// The driver's side of its results.
#[derive(Debug)]
pub struct ResultsReceiver(Arc<Inbox>);

/// Results waiting for a driver. A queue rather than a tokio channel: a channel allocates a
/// block of 32 slots up front (2 KiB per service for these, the largest single item of the
/// daemon's memory at 1,000 services), while at most one result per check and grid point
/// ever waits here unless the driver is stalled.
#[derive(Debug, Default)]
struct Inbox {
    queue: Mutex<VecDeque<Polled>>,
    ready: tokio::sync::Notify,
    closed: std::sync::atomic::AtomicBool,
}

/// A fresh pair: results sent to the first come out of the second, in order.
pub fn results() -> (Results, ResultsReceiver) {
    let inbox = Arc::new(Inbox::default());
    (Results(inbox.clone()), ResultsReceiver(inbox))
}

impl Results {
    /// Deliver a result; dropped if the receiver is gone (its service was reloaded or
    /// stopped).
    pub fn send(&self, polled: Polled) {
        if self.0.closed.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        self.0
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(polled);
        self.0.ready.notify_one();
    }
}

impl ResultsReceiver {
    /// The next result, waiting for one.
    pub async fn recv(&mut self) -> Polled {
        loop {
            if let Some(polled) = self.try_recv() {
                return polled;
            }
            self.0.ready.notified().await;
        }
    }

    /// The next result if one is waiting.
    pub fn try_recv(&mut self) -> Option<Polled> {
        self.0
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }
}

impl Drop for ResultsReceiver {
    fn drop(&mut self) {
        self.0
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.0
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_added_anywhere_between_two_grid_points_is_next_due_within_an_interval() {
        // The origin is set well in the future so that points before it stay valid instants.
        let origin = Instant::now() + Duration::from_secs(10);
        let interval = Duration::from_secs(1);
        let ms = Duration::from_millis;
        let slots = [0, 1, 30, 500, 999, 1_000, 1_001, 2_500]
            .map(|m| origin + ms(m))
            .into_iter()
            .chain([1, 500, 1_000, 1_500].map(|m| origin - ms(m)));
        for first in slots {
            let second = next_due(origin, first, interval, true);
            let offset = |at: Instant| at.max(origin) - at.min(origin);
            assert!(
                second > first && second - first <= interval,
                "first poll {:?} {} the origin: second {:?} later",
                offset(first),
                if first < origin { "before" } else { "after" },
                second - first
            );
            assert_eq!(
                offset(second).as_nanos() % interval.as_nanos(),
                0,
                "on the grid"
            );
            let third = next_due(origin, second, interval, false);
            assert_eq!(third - second, interval);
        }
    }

    fn polled(check: usize) -> Polled {
        Polled {
            check,
            took: Duration::ZERO,
            observation: Observation::Pass,
            at_ms: 0,
        }
    }

    #[tokio::test]
    async fn results_arrive_in_order_and_are_dropped_once_the_receiver_is_gone() {
        let (tx, mut rx) = results();
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            (first, rx)
        });
        tokio::task::yield_now().await;
        tx.send(polled(1));
        tx.send(polled(2));
        let (first, mut rx) = waiting.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.check, 1);
        assert_eq!(rx.recv().await.check, 2);
        assert!(rx.try_recv().is_none());
        let inbox = rx.0.clone();
        drop(rx);
        tx.send(polled(3));
        assert!(inbox
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty());
    }
}
