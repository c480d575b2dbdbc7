//! Parsers for the numeric flags. Negative values are let through to them (clap would
//! otherwise take `-5` for a flag and suggest `-- -5`, which makes things worse), so the
//! error says what is allowed instead.

use rust_decimal::Decimal;

/// A whole number in `min..=max`; `what` says what it counts, for the message.
pub fn whole(
    min: u64,
    max: u64,
    what: &'static str,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        text.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                if max >= u64::from(u32::MAX) {
                    format!("must be a whole number of {what}, at least {min}")
                } else {
                    format!("must be a whole number of {what}, {min} to {max}")
                }
            })
    }
}

/// A count that fits `u32` (keys, rows), in `min..=max`.
pub fn count(
    min: u32,
    max: u32,
    what: &'static str,
) -> impl Fn(&str) -> Result<u32, String> + Clone + Send + Sync + 'static {
    let parse = whole(min.into(), max.into(), what);
    move |text: &str| parse(text).and_then(|n| u32::try_from(n).map_err(|e| e.to_string()))
}

/// `--rpm`, `--tpm`, `--max-concurrent`: at least 1 (leave the flag out for no limit).
pub fn limit(
    what: &'static str,
    max: u64,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    let parse = whole(1, max, what);
    move |text: &str| {
        parse(text).map_err(|e| format!("{e}, like 600 (leave the flag out for no limit)"))
    }
}

/// An amount of USD for a budget: an exact decimal, more than zero.
pub fn budget_amount(text: &str) -> Result<Decimal, String> {
    let amount = Decimal::from_str_exact(text.trim()).ok();
    match amount {
        Some(a) if a > Decimal::ZERO => Ok(a),
        Some(a) if a.is_zero() => Err(
            "a budget of 0 would refuse every request: give a positive amount in USD, like 50 or 0.25 \
             (to remove a budget: `tollctl limits set ... --unset <period>`; to stop a campaign: \
             `tollctl campaigns close`)"
                .to_owned(),
        ),
        _ => Err(format!(
            "a budget must be a positive amount in USD, like 50 or 0.25; {:?} is not",
            text.trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_zero_and_junk_say_what_is_allowed() {
        let keys = count(1, 1000, "keys");
        assert_eq!(keys("8"), Ok(8));
        for bad in ["-1", "0", "1001", "x", "1.5"] {
            assert_eq!(
                keys(bad).err().as_deref(),
                Some("must be a whole number of keys, 1 to 1000"),
                "{bad}"
            );
        }
        let rpm = limit("requests per minute", u32::MAX.into());
        assert!(rpm("-3").unwrap_err().contains("at least 1, like 600"));
        assert!(
            budget_amount("-5")
                .unwrap_err()
                .contains("positive amount in USD, like 50 or 0.25")
        );
        assert!(
            budget_amount("0")
                .unwrap_err()
                .contains("would refuse every request")
        );
        assert!(budget_amount("0.00").is_err());
        assert_eq!(budget_amount("12.50").unwrap().to_string(), "12.50");
    }
}
