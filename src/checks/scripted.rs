//! A check kind whose observations a test sets: each poll answers what the [`Script`] says at
//! that moment. It lets the driver, the scheduler and the daemon be tested without a check
//! server; it is not reachable from a config file.

use super::{BoxFuture, Gate, Observation, Probe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The observations of one scripted check, shared between the test and its probe.
#[derive(Debug, Clone)]
pub struct Script(Arc<Mutex<State>>);

#[derive(Debug)]
struct State {
    observation: Observation,
    delay: Duration,
    polls: u64,
}

impl Script {
    /// A script answering `observation` until told otherwise.
    pub fn new(observation: Observation) -> Script {
        Script(Arc::new(Mutex::new(State {
            observation,
            delay: Duration::ZERO,
            polls: 0,
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answer `observation` from the next poll on.
    pub fn set(&self, observation: Observation) {
        self.state().observation = observation;
    }

    /// Take `delay` to answer each poll from the next one on.
    pub fn delay(&self, delay: Duration) {
        self.state().delay = delay;
    }

    /// How many polls it answered.
    pub fn polls(&self) -> u64 {
        self.state().polls
    }

    /// A probe answering from this script, with a target of its own.
    pub fn probe(&self, name: &str, timeout: Duration) -> ScriptedCheck {
        ScriptedCheck {
            script: self.clone(),
            target: format!("scripted:{name}"),
            gate: Arc::new(Gate::new(1)),
            timeout,
        }
    }
}

/// One scripted check.
#[derive(Debug)]
pub struct ScriptedCheck {
    script: Script,
    target: String,
    gate: Arc<Gate>,
    timeout: Duration,
}

impl Probe for ScriptedCheck {
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
        Box::pin(async move {
            let delay = self.script.state().delay;
            if !delay.is_zero()
                && tokio::time::timeout(self.timeout, tokio::time::sleep(delay))
                    .await
                    .is_err()
            {
                return Observation::Fail(format!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                ));
            }
            let mut state = self.script.state();
            state.polls += 1;
            self.gate.answered();
            state.observation.clone()
        })
    }
}
