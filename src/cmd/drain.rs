//! `anycastd drain` and `anycastd undrain`: the operator's withdrawal, and how FRR took it.

use super::args::{
    grace_ms, parse_for, parse_grace, request_ms, ClientArgs, ReasonParser, WaitArgs,
};
use super::{ask_daemon, Client, Error};
use crate::control::{Request, Response};
use crate::exit;

/// `anycastd drain`'s arguments.
#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    /// The service
    service: Option<String>,
    /// Every service
    #[arg(long)]
    all: bool,
    /// Why (journaled; shown by status and history)
    #[arg(long, value_parser = ReasonParser)]
    reason: String,
    /// End the drain by itself after this long (e.g. 30m, 2h, 90s, 90)
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_for, allow_hyphen_values = true)]
    for_duration: Option<std::time::Duration>,
    /// Announce with GRACEFUL_SHUTDOWN (65535:0) this long before withdrawing, instead of
    /// the service's drain_grace; 0 withdraws at once (also ending a grace in progress)
    #[arg(long, value_name = "DURATION", value_parser = parse_grace, allow_hyphen_values = true)]
    grace: Option<std::time::Duration>,
    /// Drain even if it takes a service's fleet below its minimum (fleet guard), or etcd
    /// cannot be read to tell; without it such a drain is refused (exit 75)
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    client: ClientArgs,
}

impl DrainArgs {
    /// Run it.
    pub fn run(self) -> Result<u8, Error> {
        let request = Request::Drain {
            // `--all` is no service (the group takes one of them).
            service: self.service.filter(|_| !self.all),
            reason: self.reason,
            for_ms: self.for_duration.map(request_ms),
            grace_ms: self.grace.map(grace_ms),
            wait_ms: self.wait.wait_ms(),
            force: self.force,
        };
        let client = self.client.client();
        super::with_runtime(|runtime| runtime.block_on(drain(&client, request)))
    }
}

/// `anycastd undrain`'s arguments.
#[derive(Debug, clap::Args)]
pub struct UndrainArgs {
    /// The service
    service: Option<String>,
    /// Every service
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    client: ClientArgs,
}

impl UndrainArgs {
    /// Run it.
    pub fn run(self) -> Result<u8, Error> {
        let request = Request::Undrain {
            service: self.service.filter(|_| !self.all),
            wait_ms: self.wait.wait_ms(),
        };
        let client = self.client.client();
        super::with_runtime(|runtime| runtime.block_on(drain(&client, request)))
    }
}

/// `anycastd drain` and `anycastd undrain`: exit 0 when FRR shows every change (or when not
/// waiting), 70 when some change was not confirmed within the wait.
pub async fn drain(client: &Client, request: Request) -> Result<u8, Error> {
    let results = match ask_daemon(client, &request).await? {
        Response::Done { results } => results,
        other => return Err(super::unexpected(&other)),
    };
    let mut code = exit::OK;
    for result in &results {
        println!("{}: {}", result.service, result.note);
        if result.verified == Some(false) {
            code = exit::SOFTWARE;
        }
    }
    Ok(code)
}
