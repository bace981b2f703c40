//! The client side of the control socket: connect, send one [`Request`], read typed
//! [`Response`]s.

use super::protocol::{parse_answer, request_line, Request, Response};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Why a client could not talk to a daemon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No daemon listens on the socket (missing or refused).
    #[error("{0}")]
    NoDaemon(String),
    /// The socket refuses this user (its file mode).
    #[error("{0}")]
    Denied(String),
    /// Anything else (an I/O error, an unreadable answer).
    #[error("{0}")]
    Other(String),
}

/// The daemon's answers to one request, line by line.
pub struct Answers {
    lines: tokio::io::Lines<BufReader<UnixStream>>,
}

impl Answers {
    /// The next answer; `Ok(None)` when the daemon closed the connection.
    pub async fn next(&mut self) -> Result<Option<Response>, ClientError> {
        match self.lines.next_line().await {
            Ok(Some(line)) => parse_answer(&line).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(ClientError::Other(format!("control socket: {e}"))),
        }
    }
}

/// Connect to the daemon's socket at `path` and send `request`.
pub async fn request(path: &Path, request: &Request) -> Result<Answers, ClientError> {
    let mut stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NoDaemon(format!(
                "no anycastd listens on {}: {e}",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(ClientError::Denied(format!(
                "permission denied on the control socket {}: not root, not the daemon's user, not in [control] group or admin_group",
                path.display()
            )))
        }
        Err(e) => {
            return Err(ClientError::Other(format!(
                "control socket {}: {e}",
                path.display()
            )))
        }
    };
    let bytes = request_line(request).map_err(|e| ClientError::Other(e.to_string()))?;
    // A refused caller is answered (and hung up on) before its request is read: a failed
    // write is not the end, the answer may be waiting.
    let _ = stream.write_all(&bytes).await;
    Ok(Answers {
        lines: BufReader::new(stream).lines(),
    })
}
