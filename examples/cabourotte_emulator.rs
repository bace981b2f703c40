//! A stand-alone Cabourotte API emulator for the demo and the whole-process benchmark.
//!
//!     cargo run --example cabourotte_emulator -- 127.0.0.1:9013 DIR [v1|v2]
//!
//! Each check's result is the content of the file `DIR/NAME`: `pass`, `fail [message]`,
//! `500` (any HTTP status), `malformed`, `hang`; a missing file is Cabourotte's
//! "result not found". Edit a file to flip a check; it is read on every request.

#[path = "../tests/support/cabourotte.rs"]
mod cabourotte;

use cabourotte::{Behaviour, Emulator, Generation};
use std::path::PathBuf;
use std::sync::Arc;

fn behaviour_of(dir: &std::path::Path, name: &str) -> Behaviour {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Behaviour::NotFound;
    }
    let Ok(text) = std::fs::read_to_string(dir.join(name)) else {
        return Behaviour::NotFound;
    };
    let text = text.trim();
    let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
    match word {
        "pass" => Behaviour::Pass,
        "fail" => Behaviour::Fail(if rest.is_empty() {
            "failed".into()
        } else {
            rest.into()
        }),
        "malformed" => Behaviour::Malformed,
        "hang" => Behaviour::Hang,
        code => match code.parse::<u16>() {
            Ok(code) => Behaviour::Status(code),
            Err(_) => Behaviour::Fail(format!("unreadable emulator file: {text}")),
        },
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: cabourotte_emulator ADDR DIR [v1|v2]");
        return std::process::ExitCode::from(2);
    }
    let generation = match args.get(3).map(String::as_str) {
        Some("v1") => Generation::V1,
        _ => Generation::V2,
    };
    let dir = PathBuf::from(&args[2]);
    let listener = match tokio::net::TcpListener::bind(&args[1]).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cabourotte_emulator: cannot listen on {}: {e}", args[1]);
            return std::process::ExitCode::from(1);
        }
    };
    let lookup: cabourotte::Lookup = Arc::new(move |name| behaviour_of(&dir, name));
    let emulator = Emulator::serve(listener, generation, Some(lookup));
    eprintln!("cabourotte emulator on {} ({generation:?})", emulator.url());
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
