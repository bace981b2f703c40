//! `anycastd drain` and `anycastd undrain`: the operator's withdrawal, and how FRR took it.

use super::{ask_daemon, Client};
use crate::control::{Request, Response};
use crate::exit;

/// `anycastd drain` and `anycastd undrain`: exit 0 when FRR shows every change (or when not
/// waiting), 70 when some change was not confirmed within the wait.
pub async fn drain(client: &Client, request: Request) -> u8 {
    let results = match ask_daemon(client, &request).await {
        Ok(Response::Done { results }) => results,
        Ok(other) => return super::unexpected(&other),
        Err(code) => return code,
    };
    let mut code = exit::OK;
    for result in &results {
        println!("{}: {}", result.service, result.note);
        if result.verified == Some(false) {
            code = exit::SOFTWARE;
        }
    }
    code
}
