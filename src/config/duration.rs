//! Durations: `500ms`, `5s`, `2m`, `1h`, `90d`, `2w`, a sum of them (`1h30m`), or a number of
//! seconds, the same syntax everywhere (the config file, `--for`, `--since`).

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
/// `1h`, `90d`, `2w`, or a sum of those (`1h30m`, `1h1s`).
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
            let not_a_number = || {
                format!(
                    "{s:?} is not a duration (write seconds or a string like \"5s\" or \"500ms\")"
                )
            };
            let no_unit = || {
                format!(
                    "{s:?} is not a duration (units: ms, s, m, h, d, w, or a sum such as \"1h30m\"; e.g. \"5s\" or \"500ms\")"
                )
            };
            // A number with a unit, or a sum of them (`1h30m`, as Go, Prometheus and systemd
            // take it); a bare number is seconds, and only alone. Only the first number may be
            // negative (and is then refused as not greater than 0).
            let number_char = |c: char| c.is_ascii_digit() || c == '.' || c == '-';
            let mut seconds = 0.0;
            let mut rest = s;
            let mut first = true;
            while !rest.is_empty() {
                let split = rest.find(|c: char| !number_char(c)).unwrap_or(rest.len());
                let (number, tail) = rest.split_at(split);
                if !first && number.starts_with('-') {
                    return Err(not_a_number());
                }
                let number: f64 = number.parse().map_err(|_| not_a_number())?;
                let split = tail.find(number_char).unwrap_or(tail.len());
                let (unit, next) = tail.split_at(split);
                let scale = match unit.trim() {
                    "ms" => 0.001,
                    "s" => 1.0,
                    "" if first && next.is_empty() => 1.0,
                    "m" => 60.0,
                    "h" => 3600.0,
                    "d" => 86400.0,
                    "w" => 7.0 * 86400.0,
                    _ => return Err(no_unit()),
                };
                seconds += number * scale;
                rest = next;
                first = false;
            }
            positive(seconds)
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
    fn a_sum_of_units_is_one_duration_and_a_unit_is_needed_after_the_first() {
        assert_eq!(parse_duration_text("1h1s"), Ok(Duration::from_secs(3601)));
        assert_eq!(parse_duration_text("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration_text("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration_text("1s500ms"),
            Ok(Duration::from_millis(1500))
        );
        // As before: one number and a unit, or seconds alone.
        assert_eq!(parse_duration_text("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration_text("2.5s"), Ok(Duration::from_millis(2500)));
        for bad in ["1h30", "1h-5m", "1x", "00:00:05", "h", "1hh"] {
            assert!(parse_duration_text(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_duration_text("-5s"),
            Err("must be greater than 0".to_owned())
        );
    }

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
