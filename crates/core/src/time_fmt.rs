//! Timestamps are kept as Unix milliseconds and shown as RFC 3339 in UTC.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 with millisecond precision, e.g. `2026-11-24T10:00:00.123Z`.
pub fn rfc3339_millis(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let t = t
        .replace_nanosecond((ms.rem_euclid(1000) as u32) * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// RFC 3339 for whole seconds, e.g. `2026-11-24T10:00:00Z` (used in token messages).
pub fn rfc3339_seconds(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339_seconds(1_795_514_400), "2026-11-24T10:00:00Z");
        assert_eq!(
            rfc3339_millis(1_795_514_400_123),
            "2026-11-24T10:00:00.123Z"
        );
    }
}
