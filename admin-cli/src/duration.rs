//! Short human durations (`30s`, `15m`, `24h`, `7d`) for TTLs and expiry flags.

use chrono::{SecondsFormat, TimeDelta, Utc};

/// Parses `<positive integer><unit>` where unit is `s`, `m`, `h` or `d`.
///
/// Zero is rejected because every caller uses the result as a lifetime, and a lifetime of
/// nothing is always a mistake.
pub fn parse(input: &str) -> Result<TimeDelta, String> {
    let s = input.trim();
    let hint = "expected a whole number followed by s, m, h or d (e.g. 30s, 15m, 24h, 7d)";
    let Some(unit) = s.chars().last() else {
        return Err(format!("empty duration: {hint}"));
    };
    let digits = &s[..s.len() - unit.len_utf8()];
    let seconds_per_unit: i64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Err(format!("invalid duration {input:?}: {hint}")),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid duration {input:?}: {hint}"));
    }
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("invalid duration {input:?}: number too large"))?;
    if n == 0 {
        return Err(format!(
            "invalid duration {input:?}: must be greater than zero"
        ));
    }
    n.checked_mul(seconds_per_unit)
        .and_then(TimeDelta::try_seconds)
        .ok_or_else(|| format!("invalid duration {input:?}: too large"))
}

/// `now + d` as an RFC 3339 UTC timestamp, for `--expires-in` / `--ends-in`.
pub fn from_now(d: TimeDelta) -> Result<String, String> {
    Utc::now()
        .checked_add_signed(d)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .ok_or_else(|| "duration is too far in the future".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("30s"), Ok(TimeDelta::seconds(30)));
        assert_eq!(parse("15m"), Ok(TimeDelta::minutes(15)));
        assert_eq!(parse("24h"), Ok(TimeDelta::hours(24)));
        assert_eq!(parse("7d"), Ok(TimeDelta::days(7)));
        assert_eq!(parse(" 1h "), Ok(TimeDelta::hours(1)));
    }

    #[test]
    fn rejects_bad_input_with_a_hint() {
        for bad in [
            "", "h", "10", "10w", "1.5h", "-1h", "+1h", "1 h", "abc", "1h30m", "١h",
        ] {
            let err = parse(bad).err();
            assert!(err.is_some(), "{bad:?} should not parse");
        }
        let err = parse("10w").err().unwrap_or_default();
        assert!(err.contains("\"10w\""), "{err}");
        assert!(err.contains("30s, 15m, 24h, 7d"), "{err}");
    }

    #[test]
    fn rejects_zero_and_overflow() {
        assert!(
            parse("0s")
                .err()
                .unwrap_or_default()
                .contains("greater than zero")
        );
        assert!(parse("99999999999999999999d").is_err());
        assert!(parse("9223372036854775807d").is_err());
    }

    #[test]
    fn from_now_is_rfc3339_in_the_future() -> Result<(), String> {
        let s = from_now(TimeDelta::days(7))?;
        let t = chrono::DateTime::parse_from_rfc3339(&s).map_err(|e| e.to_string())?;
        let delta = t.with_timezone(&Utc) - Utc::now();
        assert!(delta > TimeDelta::days(7) - TimeDelta::minutes(1) && delta <= TimeDelta::days(7));
        assert!(s.ends_with('Z'));
        assert!(from_now(TimeDelta::MAX).is_err());
        Ok(())
    }
}
