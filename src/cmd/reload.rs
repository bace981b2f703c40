//! `anycastd reload`: the daemon re-reads its config file; a rejection is journaled there.

use super::{ask_daemon, Client};
use crate::control::{Request, Response};
use crate::exit;

/// `anycastd reload`: the daemon re-reads its file (and journals a rejection).
pub async fn reload(client: &Client) -> u8 {
    match ask_daemon(client, &Request::Reload).await {
        Ok(Response::Reloaded { message }) => {
            println!("anycastd {message}");
            exit::OK
        }
        Ok(other) => super::unexpected(&other),
        Err(code) => code,
    }
}
