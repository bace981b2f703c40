//! `anycastd reload`: the daemon re-reads its config file; a rejection is journaled there.

use super::args::ClientArgs;
use super::{ask_daemon, Client, Error};
use crate::control::{Request, Response};
use crate::exit;

/// `anycastd reload`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    client: ClientArgs,
}

impl ReloadArgs {
    /// Run it.
    pub fn run(self) -> Result<u8, Error> {
        let client = self.client.client();
        super::with_runtime(|runtime| runtime.block_on(reload(&client)))
    }
}

/// `anycastd reload`: the daemon re-reads its file (and journals a rejection).
pub async fn reload(client: &Client) -> Result<u8, Error> {
    match ask_daemon(client, &Request::Reload).await? {
        Response::Reloaded { message } => {
            println!("anycastd {message}");
            Ok(exit::OK)
        }
        other => Err(super::unexpected(&other)),
    }
}
