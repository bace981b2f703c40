//! I/O errors in words, as every message of anycastd writes them: shared by the config
//! loader, the routing backends and the checks, and owned by none of them.

/// An I/O error in words, without Rust's "(os error N)".
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string().to_lowercase(),
    }
}
