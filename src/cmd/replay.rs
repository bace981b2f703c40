//! `anycastd replay SERVICE`: the re-run and what-ifs (see [`crate::audit::replay`]), through the
//! daemon or from the journal directly.

use super::{ask, Asked, Client};
use crate::control::{self, Request, Response};
use crate::exit;

/// `anycastd replay`.
pub async fn replay(client: &Client, request: Request, json: bool) -> u8 {
    let Request::Replay {
        service,
        since_ms,
        until_ms,
        what_if,
    } = &request
    else {
        return exit::SOFTWARE;
    };
    let report = match ask(client, &request).await {
        Asked::Answer(Response::Replay { report }) => *report,
        Asked::Answer(other) => return super::unexpected(&other),
        Asked::NoDaemon(_) => {
            let (config, journal) = match client.journal_directly("replay") {
                Ok(Some(opened)) => opened,
                Ok(None) => return exit::OK,
                Err(code) => return code,
            };
            if let Some(message) = control::unknown_service(service, config, Some(&journal)) {
                eprintln!("anycastd: {message}");
                return exit::USAGE;
            }
            match crate::audit::replay::replay_from(
                &journal, service, *since_ms, *until_ms, None, what_if,
            ) {
                Ok(report) => report,
                Err(e) => {
                    eprintln!("anycastd: {e}");
                    return exit::SOFTWARE;
                }
            }
        }
        Asked::Exit(code) => return code,
    };
    if !report.not_shadow.is_empty() {
        let known = if report.shadow_checks.is_empty() {
            "it has none".to_owned()
        } else {
            format!("its shadow checks: {}", report.shadow_checks.join(", "))
        };
        eprintln!(
            "anycastd: --with-shadow {}: not a shadow check of {service} in the journal ({known})",
            report.not_shadow.join(", ")
        );
        return exit::USAGE;
    }
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        print!("{}", crate::audit::replay::render_text(&report));
    }
    if report.recorded.timeline.is_empty() {
        eprintln!("anycastd: no transitions of {service} in this window");
    }
    exit::OK
}
