//! `anycastd completions`, `man` and `schema`: what the command line and the config file are,
//! printed for a shell, `man` and an editor.

use super::Error;
use crate::exit;

/// `anycastd completions`'s arguments.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell
    shell: clap_complete::Shell,
}

impl CompletionsArgs {
    /// Print the completion script of `command` (the whole command line).
    pub fn run(self, mut command: clap::Command) -> Result<u8, Error> {
        clap_complete::generate(self.shell, &mut command, "anycastd", &mut std::io::stdout());
        Ok(exit::OK)
    }
}

/// Print the manual page of `command` (the whole command line).
pub fn man(command: clap::Command) -> Result<u8, Error> {
    crate::manual::render(command, &mut std::io::stdout())
        .map(|()| exit::OK)
        .map_err(|e| Error::Failed(e.to_string()))
}

/// Print the config file's JSON Schema.
pub fn schema() -> Result<u8, Error> {
    println!("{}", crate::config::schema::json(&crate::checks::REGISTRY));
    Ok(exit::OK)
}
