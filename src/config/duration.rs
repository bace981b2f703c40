//! Durations: `500ms`, `5s`, `2m`, `1h`, `90d`, `2w`, or a number of seconds, the same syntax
//! everywhere (the config file, `--for`, `--since`).

use super::tree::Value;
use std::time::Duration;

/// A duration given as text on the command line: `500ms`, `5s`, `2m`, `1h`, `1d`, or seconds.
pub fn parse_duration_text(text: &str) -> Result<Duration, String> {
    parse_duration(&Value::String(text.to_owned()))
}

/// The longest duration accepted anywhere (config, `--for`, `--since`), itself included, as
/// the error, the documentation and the schema's `maximum` say.
const MAX_DURATION_SECONDS: f64 = 1e9;

/// A duration of `seconds`, if it is one accepted anywhere (config, command line, control
/// socket): more than 0 and at most `MAX_DURATION_SECONDS`, with the words of the rule.
pub fn duration_of_seconds(seconds: f64) -> Result<Duration, String> {
    if !(seconds.is_finite() && seconds > 0.0) {
        Err("must be greater than 0".to_owned())
    } else if seconds > MAX_DURATION_SECONDS {
        Err("too long: at most 1000000000 seconds (about 31 years)".to_owned())
    } else {
        Ok(Duration::from_secs_f64(seconds))
    }
}

/// A duration: a number of seconds (integer or float) or a string like `500ms`, `5s`, `2m`,
/// `1h`, `90d`, `2w`.
pub(super) fn parse_duration(value: &Value) -> Result<Duration, String> {
    let positive = duration_of_seconds;
    match value {
        Value::Integer(n) => positive(*n as f64),
        Value::Float(f) => positive(*f),
        Value::String(s) => {
            let s = s.trim();
            if s.starts_with('P') || s.starts_with('p') {
                return Err(format!(
                    "{s:?}: ISO-8601 durations are not accepted; write seconds or a string like \"5s\" or \"500ms\""
                ));
            }
            let split = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                .unwrap_or(s.len());
            let (number, unit) = s.split_at(split);
            let number: f64 = number.parse().map_err(|_| {
                format!(
                    "{s:?} is not a duration (write seconds or a string like \"5s\" or \"500ms\")"
                )
            })?;
            let scale = match unit.trim() {
                "ms" => 0.001,
                "s" | "" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86400.0,
                "w" => 7.0 * 86400.0,
                _ => {
                    return Err(format!(
                    "{s:?} is not a duration (units: ms, s, m, h, d, w; e.g. \"5s\" or \"500ms\")"
                ))
                }
            };
            positive(number * scale)
        }
        other => Err(format!(
            "must be a number of seconds or a string like \"5s\", not {}",
            other.kind()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_duration_is_accepted_and_anything_longer_refused() {
        let too_long = Err("too long: at most 1000000000 seconds (about 31 years)".to_owned());
        assert_eq!(
            duration_of_seconds(1e9),
            Ok(Duration::from_secs(1_000_000_000))
        );
        assert_eq!(
            parse_duration_text("1000000000s"),
            Ok(Duration::from_secs(1_000_000_000))
        );
        assert_eq!(parse_duration_text("1000000001"), too_long);
        assert_eq!(
            duration_of_seconds(f64::INFINITY).map(|_| ()),
            Err("must be greater than 0".to_owned())
        );
        assert_eq!(
            duration_of_seconds(0.0),
            Err("must be greater than 0".to_owned())
        );
    }
}
