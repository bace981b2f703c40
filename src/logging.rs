//! Log output: tracing to stdout as `human`, `json` or `logfmt` lines.
//!
//! The event text keeps the original anycastd's wording; structured fields (service,
//! prefixes, checks, failing check, reason) go beside it. JSON is one object per line with
//! `timestamp`, `level`, `event` first; logfmt is `key=value` pairs with quoting.

use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for a terminal.
    Human,
    /// One JSON object per line.
    Json,
    /// `key=value` pairs.
    Logfmt,
}

/// Parse a `--log-level` value: debug, info, warning (or warn), error; any case.
pub fn parse_level(text: &str) -> Result<Level, String> {
    match text.to_ascii_lowercase().as_str() {
        "debug" => Ok(Level::DEBUG),
        "info" => Ok(Level::INFO),
        "warning" | "warn" => Ok(Level::WARN),
        "error" => Ok(Level::ERROR),
        other => Err(format!(
            "unknown log level {other:?} (debug, info, warning, error)"
        )),
    }
}

/// Install the global subscriber.
pub fn init(format: Format, level: Level, color: bool) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stdout)
        .with_target(false);
    let _ = match format {
        Format::Human => builder.with_ansi(color).try_init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        Format::Logfmt => builder.event_format(Logfmt).try_init(),
    };
}

/// A logfmt event formatter: `timestamp=... level=info event="..." key=value ...`.
pub struct Logfmt;

struct Fields {
    message: String,
    pairs: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.pairs.push((field.name().to_owned(), text));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.pairs.push((field.name().to_owned(), value.to_owned()));
        }
    }
}

/// Quote a logfmt value when it needs it.
pub fn logfmt_value(value: &str) -> String {
    if !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control())
    {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields {
            message: String::new(),
            pairs: Vec::new(),
        };
        event.record(&mut fields);
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        write!(
            writer,
            "timestamp={timestamp} level={level} event={}",
            logfmt_value(&fields.message)
        )?;
        for (key, value) in fields.pairs {
            write!(writer, " {key}={}", logfmt_value(&value))?;
        }
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_is_accepted_as_warn_in_any_case() {
        assert_eq!(parse_level("WARNING"), Ok(Level::WARN));
        assert_eq!(parse_level("warn"), Ok(Level::WARN));
        assert!(parse_level("verbose").is_err());
    }

    #[test]
    fn logfmt_values_are_quoted_only_when_needed() {
        assert_eq!(logfmt_value("dns"), "dns");
        assert_eq!(logfmt_value("a b"), "\"a b\"");
        assert_eq!(logfmt_value(""), "\"\"");
        assert_eq!(logfmt_value("x=\"y\""), "\"x=\\\"y\\\"\"");
    }
}
