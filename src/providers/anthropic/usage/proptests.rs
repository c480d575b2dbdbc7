//! Property tests: Anthropic usage reports of any shape never panic; the prompt's parts are
//! summed without wrapping, and no part is charged less than reported.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use super::from_message_json;
use crate::test_support::{Count, cases, count, json_text, object};

/// One `usage` object as Anthropic writes it.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub input: Count,
    pub output: Count,
    pub cache_write: Count,
    pub cache_read: Count,
    /// `cache_creation`: 0 absent, 1 null, 2 an object with the two counts.
    pub breakdown: u8,
    pub write_5m: Count,
    pub write_1h: Count,
}

pub(crate) fn report() -> impl Strategy<Value = Report> {
    (count(), count(), count(), count(), 0..3u8, count(), count()).prop_map(
        |(input, output, cache_write, cache_read, breakdown, write_5m, write_1h)| Report {
            input,
            output,
            cache_write,
            cache_read,
            breakdown,
            write_5m,
            write_1h,
        },
    )
}

impl Report {
    pub(crate) fn json(&self) -> String {
        let breakdown = match self.breakdown {
            0 => None,
            1 => Some("\"cache_creation\":null".to_owned()),
            _ => Some(format!(
                "\"cache_creation\":{}",
                object([
                    self.write_5m.member("ephemeral_5m_input_tokens"),
                    self.write_1h.member("ephemeral_1h_input_tokens"),
                ])
            )),
        };
        object([
            self.input.member("input_tokens"),
            self.output.member("output_tokens"),
            self.cache_write.member("cache_creation_input_tokens"),
            self.cache_read.member("cache_read_input_tokens"),
            breakdown,
        ])
    }

    /// Every count as read (absent and null as `None`); `None` if the report is unreadable.
    pub(crate) fn read(&self) -> Option<[Option<u64>; 6]> {
        let (write_5m, write_1h) = match self.breakdown {
            2 => (self.write_5m.read().ok()?, self.write_1h.read().ok()?),
            _ => (None, None),
        };
        Some([
            self.input.read().ok()?,
            self.output.read().ok()?,
            self.cache_write.read().ok()?,
            self.cache_read.read().ok()?,
            write_5m,
            write_1h,
        ])
    }
}

/// The usage the gateway must derive from counts `[input, output, cache_write, cache_read,
/// write_5m, write_1h]`, as bounds it must satisfy and, when nothing comes near `u64::MAX`,
/// exactly.
pub(crate) fn check(
    counts: [Option<u64>; 6],
    usage: crate::pricing::Usage,
) -> Result<(), TestCaseError> {
    let [input, output, _, cache_read, write_5m, write_1h] =
        counts.map(|c| u128::from(c.unwrap_or(0)));
    let max = u128::from(u64::MAX);
    let got = |n: u64| u128::from(n);
    prop_assert_eq!(got(usage.cached_input_tokens), cache_read);
    prop_assert_eq!(got(usage.output_tokens), output);
    prop_assert_eq!(got(usage.cache_write_1h_tokens), write_1h);
    prop_assert_eq!(usage.reasoning_tokens, 0);
    prop_assert!(got(usage.cache_write_tokens) >= write_5m);
    let writes = got(usage.cache_write_tokens) + got(usage.cache_write_1h_tokens);
    let reported_writes = counts[2].map_or(write_5m + write_1h, u128::from);
    prop_assert!(
        writes >= reported_writes.min(max),
        "writes {writes} < {reported_writes}"
    );
    prop_assert_eq!(
        got(usage.input_tokens),
        (input + cache_read + writes).min(max)
    );
    let small = counts.iter().flatten().all(|c| *c < 1 << 62);
    if small {
        // Writes not attributed to the 1-hour cache are 5-minute writes; a breakdown larger
        // than its total is charged as reported.
        let total = counts[2].map_or(write_5m + write_1h, u128::from);
        let five = write_5m.max(total.saturating_sub(write_1h));
        prop_assert_eq!(got(usage.cache_write_tokens), five);
        prop_assert_eq!(writes, total.max(five + write_1h));
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn any_bytes_or_json_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), text in json_text()) {
        let _ = from_message_json(&bytes);
        let _ = from_message_json(text.as_bytes());
        let _ = from_message_json(format!(r#"{{"type":"message","usage":{text}}}"#).as_bytes());
    }

    #[test]
    fn message_usage_sums_the_prompt_without_wrapping(report in report()) {
        let body = format!(r#"{{"id":"msg","type":"message","content":[],"usage":{}}}"#, report.json());
        let usage = from_message_json(body.as_bytes());
        match report.read() {
            None => prop_assert_eq!(usage, None),
            Some(counts) => check(counts, usage.unwrap())?,
        }
    }
}
