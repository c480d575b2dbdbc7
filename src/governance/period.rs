//! Budget periods on UTC calendar boundaries.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// Never resets.
    Total,
    Daily,
    /// Monday 00:00 UTC to the next Monday.
    Weekly,
    Monthly,
}

impl Period {
    pub const ALL: [Period; 4] = [
        Period::Total,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Total => "total",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
        }
    }

    pub fn parse(text: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// The window containing `now`: `[start, end)`; `Total` has no end.
    pub fn window(self, now: DateTime<Utc>) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
        let day = now.date_naive();
        let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN));
        match self {
            Period::Total => (DateTime::<Utc>::UNIX_EPOCH, None),
            Period::Daily => (midnight(day), Some(midnight(day) + Duration::days(1))),
            Period::Weekly => {
                let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
                (midnight(monday), Some(midnight(monday) + Duration::days(7)))
            }
            Period::Monthly => {
                let first = day.with_day(1).unwrap_or(day);
                let next = first
                    .checked_add_months(chrono::Months::new(1))
                    .unwrap_or(first);
                (midnight(first), Some(midnight(next)))
            }
        }
    }

    /// A short label for the window containing `now`, used in Redis key names.
    pub fn label(self, now: DateTime<Utc>) -> String {
        let (start, _) = self.window(now);
        match self {
            Period::Total => "total".to_string(),
            _ => format!("{}{}", &self.as_str()[..1], start.format("%Y%m%d")),
        }
    }
}

/// Where "now" comes from, so tests can cross a period boundary without waiting for one.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn windows_follow_utc_calendar_boundaries() {
        let now = at("2026-11-21T23:59:59.999Z");
        assert_eq!(
            Period::Daily.window(now),
            (at("2026-11-21T00:00:00Z"), Some(at("2026-11-22T00:00:00Z")))
        );
        // 2026-11-21 is a Saturday; the week began on Monday the 16th.
        assert_eq!(
            Period::Weekly.window(now),
            (at("2026-11-16T00:00:00Z"), Some(at("2026-11-23T00:00:00Z")))
        );
        assert_eq!(
            Period::Monthly.window(now),
            (at("2026-11-01T00:00:00Z"), Some(at("2026-12-01T00:00:00Z")))
        );
        let dec = at("2026-12-31T12:00:00Z");
        assert_eq!(
            Period::Monthly.window(dec).1,
            Some(at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(Period::Total.window(now).1, None);
    }

    #[test]
    fn labels_change_exactly_at_the_boundary() {
        let before = at("2026-11-21T23:59:59Z");
        let after = at("2026-11-22T00:00:00Z");
        assert_eq!(Period::Daily.label(before), "d20261121");
        assert_eq!(Period::Daily.label(after), "d20261122");
        assert_eq!(Period::Weekly.label(before), Period::Weekly.label(after));
        assert_eq!(
            Period::Weekly.label(at("2026-11-23T00:00:00Z")),
            "w20261123"
        );
        assert_eq!(Period::Monthly.label(after), "m20261101");
        assert_eq!(Period::Total.label(after), "total");
    }

    #[test]
    fn parse_round_trips() {
        for p in Period::ALL {
            assert_eq!(Period::parse(p.as_str()), Some(p));
        }
        assert_eq!(Period::parse("yearly"), None);
    }
}
