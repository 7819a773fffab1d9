//! Cron schedules of the policies (`croner`; UTC): 5 fields, or 6 with seconds
//! first (so tests can fire in seconds). The next due time of every schedule is
//! stored; a schedule whose time passed while no service ran fires once when one
//! starts — not once per missed slot — and its next time is computed from now.

use chrono::{DateTime, Utc};
use croner::Cron;

/// Parses cron text (5 fields, or 6 with seconds first); the error says why.
pub fn parse(text: &str) -> Result<Cron, String> {
    let fields = text.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "{text:?} has {fields} fields; write 5 (minute hour day month weekday, UTC) \
             like \"0 2 * * 0\", or 6 with seconds first"
        ));
    }
    Cron::new(text)
        .with_seconds_optional()
        .parse()
        .map_err(|e| format!("{text:?} is not a cron schedule: {e}"))
}

/// The first time of `cron` strictly after `after_ms` (None: it never fires again).
pub fn next_after(cron: &Cron, after_ms: i64) -> Option<i64> {
    let after: DateTime<Utc> = DateTime::from_timestamp_millis(after_ms)?;
    cron.find_next_occurrence(&after, false)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Whether a schedule whose stored next time is `next_ms` fires at `now_ms`, and
/// its next time after that: one run however many slots were missed, the next
/// time counted from now.
pub fn due(cron: &Cron, next_ms: Option<i64>, now_ms: i64) -> Option<Option<i64>> {
    match next_ms {
        Some(at) if at <= now_ms => Some(next_after(cron, now_ms)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn five_and_six_fields_parse_and_bad_text_says_why() {
        assert!(parse("0 2 * * 0").is_ok());
        assert!(parse("*/5 * * * * *").is_ok());
        let e = parse("0 2 * *").unwrap_err();
        assert!(e.contains("4 fields"), "{e}");
        let e = parse("0 99 * * *").unwrap_err();
        assert!(e.contains("not a cron schedule"), "{e}");
    }

    #[test]
    fn next_after_is_in_utc() {
        let c = parse("0 2 * * *").unwrap();
        assert_eq!(
            next_after(&c, ms("2026-12-01T03:00:00Z")),
            Some(ms("2026-12-02T02:00:00Z"))
        );
        let c = parse("*/10 * * * * *").unwrap();
        assert_eq!(
            next_after(&c, ms("2026-12-01T03:00:00Z")),
            Some(ms("2026-12-01T03:00:10Z"))
        );
    }

    #[test]
    fn a_schedule_missed_many_times_fires_once_and_continues_from_now() {
        let c = parse("0 * * * *").unwrap();
        // down for three days: 72 slots missed
        let stored = ms("2026-11-28T00:00:00Z");
        let now = ms("2026-12-01T10:30:00Z");
        let next = due(&c, Some(stored), now).expect("due");
        assert_eq!(next, Some(ms("2026-12-01T11:00:00Z")));
        // and right after, with the new next time, it is not due again
        assert_eq!(due(&c, next, now + 1000), None);
    }

    #[test]
    fn a_schedule_not_yet_due_does_not_fire() {
        let c = parse("0 * * * *").unwrap();
        assert_eq!(
            due(
                &c,
                Some(ms("2026-12-01T11:00:00Z")),
                ms("2026-12-01T10:59:59Z")
            ),
            None
        );
        assert_eq!(due(&c, None, ms("2026-12-01T10:59:59Z")), None);
    }
}
