//! `anycastd replay SERVICE`: the re-run and what-ifs (see [`crate::audit::replay`]), through the
//! daemon or from the journal directly.

use super::args::{grace_ms, parse_for, parse_grace, request_ms, ClientArgs, WindowArgs};
use super::{ask, Asked, Client, Error};
use crate::audit::replay::WhatIf;
use crate::control::{self, Request, Response};
use crate::exit;
use anycastd_journal::wire::DampingParams;

/// `anycastd replay`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The service
    service: String,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    window: WindowArgs,
    /// What-if: consecutive healthy verdicts to announce (1-1000)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rise: Option<u32>,
    /// What-if: consecutive unhealthy verdicts to withdraw (1-1000)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    fall: Option<u32>,
    /// What-if: this shadow check gates like the others (repeatable): what would have
    /// happened had it decided
    #[arg(long, value_name = "CHECK")]
    with_shadow: Vec<String>,
    #[command(flatten)]
    damping: DampingArgs,
    /// What-if: what an unhealthy service does (withdraw, or stay announced de-preferred;
    /// only the level matters, no deprefer table is needed)
    #[arg(long, value_name = "WHAT")]
    on_unhealthy: Option<OnUnhealthyArg>,
    /// What-if: the grace of every drain and stop (e.g. 30s; 0: withdrawn at once; at most
    /// 1 h), instead of the ones the journal records
    #[arg(long, value_name = "DURATION", value_parser = parse_grace, allow_hyphen_values = true)]
    drain_grace: Option<std::time::Duration>,
    /// JSON output
    #[arg(long)]
    json: bool,
}

/// `--on-unhealthy`'s values (the config key's).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OnUnhealthyArg {
    /// Withdraw the prefixes
    Withdraw,
    /// Keep them announced, de-preferred
    Deprefer,
}

impl From<OnUnhealthyArg> for anycastd_fsm::OnUnhealthy {
    fn from(arg: OnUnhealthyArg) -> anycastd_fsm::OnUnhealthy {
        match arg {
            OnUnhealthyArg::Withdraw => anycastd_fsm::OnUnhealthy::Withdraw,
            OnUnhealthyArg::Deprefer => anycastd_fsm::OnUnhealthy::Deprefer,
        }
    }
}

/// The what-if's flap damping options.
#[derive(Debug, clap::Args)]
struct DampingArgs {
    /// What-if: flap damping with this half-life (e.g. 5m); the other --damping-* options
    /// default to penalty 1000, suppress 2000, reuse 750, max-suppress 4 half-lives
    #[arg(long, value_name = "DURATION", value_parser = parse_for)]
    damping_half_life: Option<std::time::Duration>,
    /// What-if damping: penalty per health-caused withdrawal [default: 1000]
    #[arg(long, value_name = "N", requires = "damping_half_life", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    damping_penalty: Option<u32>,
    /// What-if damping: suppress above this penalty [default: 2000]
    #[arg(long, value_name = "N", requires = "damping_half_life", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    damping_suppress: Option<u32>,
    /// What-if damping: reuse below this penalty (less than --damping-suppress) [default: 750]
    #[arg(long, value_name = "N", requires = "damping_half_life", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    damping_reuse: Option<u32>,
    /// What-if damping: longest suppression [default: 4 half-lives]
    #[arg(long, value_name = "DURATION", requires = "damping_half_life", value_parser = parse_for)]
    damping_max_suppress: Option<std::time::Duration>,
}

impl DampingArgs {
    /// The what-if's flap damping (`None` without `--damping-half-life`); a usage error when
    /// reuse is not below suppress.
    fn params(&self) -> Result<Option<DampingParams>, Error> {
        let penalty = self.damping_penalty.unwrap_or(1000);
        let suppress = self.damping_suppress.unwrap_or(2000);
        let reuse = self.damping_reuse.unwrap_or(750);
        let Some(half_life) = self.damping_half_life else {
            return Ok(None);
        };
        if reuse >= suppress {
            return Err(Error::Usage(
                "--damping-reuse must be less than --damping-suppress".into(),
            ));
        }
        // Four half-lives by default, but no longer than any duration may be.
        let longest = std::time::Duration::from_secs(999_999_999);
        let max_suppress = self
            .damping_max_suppress
            .unwrap_or_else(|| half_life.saturating_mul(4).min(longest));
        Ok(Some(DampingParams {
            penalty,
            suppress,
            reuse,
            half_life_ms: request_ms(half_life),
            max_suppress_ms: request_ms(max_suppress),
        }))
    }
}

impl ReplayArgs {
    /// Run it.
    pub fn run(self) -> Result<u8, Error> {
        let damping = self.damping.params()?;
        let (since_ms, until_ms) = self.window.window()?;
        let request = Request::Replay {
            service: self.service,
            since_ms,
            until_ms,
            what_if: WhatIf {
                rise: self.rise,
                fall: self.fall,
                damping,
                with_shadow: self.with_shadow,
                on_unhealthy: self.on_unhealthy.map(Into::into),
                drain_grace_ms: self.drain_grace.map(grace_ms),
            },
        };
        let client = self.client.client();
        super::with_runtime(|runtime| runtime.block_on(replay(&client, request, self.json)))
    }
}

/// `anycastd replay`.
pub async fn replay(client: &Client, request: Request, json: bool) -> Result<u8, Error> {
    let Request::Replay {
        service,
        since_ms,
        until_ms,
        what_if,
    } = &request
    else {
        return Err(Error::Failed(format!("not a replay request: {request:?}")));
    };
    let report = match ask(client, &request).await? {
        Asked::Answer(Response::Replay { report }) => *report,
        Asked::Answer(other) => return Err(super::unexpected(&other)),
        Asked::NoDaemon(_) => {
            let Some((config, journal)) = client.journal_directly("replay")? else {
                return Ok(exit::OK);
            };
            if let Some(message) = control::unknown_service(service, config, Some(&journal)) {
                return Err(Error::Usage(message));
            }
            crate::audit::replay::replay_from(
                &journal, service, *since_ms, *until_ms, None, what_if,
            )?
        }
    };
    if !report.not_shadow.is_empty() {
        let known = if report.shadow_checks.is_empty() {
            "it has none".to_owned()
        } else {
            format!("its shadow checks: {}", report.shadow_checks.join(", "))
        };
        return Err(Error::Usage(format!(
            "--with-shadow {}: not a shadow check of {service} in the journal ({known})",
            report.not_shadow.join(", ")
        )));
    }
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        print!("{}", crate::audit::replay::render_text(&report));
    }
    if report.recorded.timeline.is_empty() {
        eprintln!("anycastd: no transitions of {service} in this window");
    }
    Ok(exit::OK)
}
