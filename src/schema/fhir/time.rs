//! FHIR `date`, `dateTime` and `instant` text → milliseconds since the
//! epoch, and ages in completed years.
//!
//! Accepted forms (FHIR R4): `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, and
//! `YYYY-MM-DDThh:mm:ss[.f…](Z|+hh:mm|-hh:mm)`: a time always carries its
//! offset, as FHIR requires. Years 0001–9999, months 01–12, days that exist
//! in their month, hours 00–23, offsets up to ±14:00; fractions of a second
//! take 1 to 9 digits and are cut to the millisecond; second 60 (a leap
//! second) is the next minute's first second.
//!
//! **A partial date maps to the first millisecond of its period, in UTC**:
//! `2024` → 2024-01-01T00:00:00.000Z, `2024-03` → 2024-03-01T00:00:00.000Z,
//! `2024-03-15` → 2024-03-15T00:00:00.000Z (FHIR gives a date no zone).

const MS_PER_DAY: i64 = 86_400_000;

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// One calendar for the whole crate: the file reader's (`text_values`).
pub use crate::source::text_values::{civil_from_days, days_from_civil};

/// A FHIR `date` (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`); missing parts are 1.
pub fn parse_date(s: &str) -> Option<(i64, u32, u32)> {
    let b = s.as_bytes();
    let (date, rest) = split_date(b)?;
    rest.is_empty().then_some(date)
}

/// A civil date: year, month, day.
type Ymd = (i64, u32, u32);

fn split_date(b: &[u8]) -> Option<(Ymd, &[u8])> {
    if b.len() < 4 {
        return None;
    }
    let y = i64::from(digits(&b[..4])?);
    if y == 0 {
        return None;
    }
    let mut rest = &b[4..];
    let mut m = 1;
    let mut d = 1;
    if let [b'-', a, c, tail @ ..] = rest {
        m = digits(&[*a, *c])?;
        if !(1..=12).contains(&m) {
            return None;
        }
        rest = tail;
        if let [b'-', a, c, tail @ ..] = rest {
            d = digits(&[*a, *c])?;
            if d == 0 || d > days_in_month(y, m) {
                return None;
            }
            rest = tail;
        }
    }
    Some(((y, m, d), rest))
}

/// A FHIR `date`, `dateTime` or `instant` as ms since the epoch (UTC).
pub fn parse_time_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let ((y, m, d), rest) = split_date(b)?;
    let day_ms = days_from_civil(y, m, d) * MS_PER_DAY;
    if rest.is_empty() {
        return Some(day_ms);
    }
    // A time needs the full date, and its offset.
    if b.len() - rest.len() != 10 {
        return None;
    }
    let [b'T', h1, h2, b':', n1, n2, b':', s1, s2, rest @ ..] = rest else {
        return None;
    };
    let (h, n, sec) = (
        digits(&[*h1, *h2])?,
        digits(&[*n1, *n2])?,
        digits(&[*s1, *s2])?,
    );
    if h > 23 || n > 59 || sec > 60 {
        return None;
    }
    let mut rest = rest;
    let mut ms = 0;
    if let [b'.', tail @ ..] = rest {
        let len = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&len) {
            return None;
        }
        let frac = &tail[..len];
        ms = frac
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(3)
            .fold(0, |n, d| n * 10 + i64::from(d - b'0'));
        rest = &tail[len..];
    }
    let offset_min: i64 = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), a, c, b':', e, f] => {
            let (oh, om) = (digits(&[*a, *c])?, digits(&[*e, *f])?);
            if om > 59 || oh > 14 || (oh == 14 && om != 0) {
                return None;
            }
            let v = i64::from(oh * 60 + om);
            if *sign == b'-' { -v } else { v }
        }
        _ => return None,
    };
    let secs = i64::from(h) * 3600 + i64::from(n) * 60 + i64::from(sec) - offset_min * 60;
    Some(day_ms + secs * 1000 + ms)
}

/// Milliseconds since the epoch as a FHIR instant
/// (`YYYY-MM-DDThh:mm:ss.fffZ`), for years 0001 to 9999.
pub fn format_instant(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let t = ms.rem_euclid(MS_PER_DAY);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        t / 3_600_000,
        t / 60_000 % 60,
        t / 1000 % 60,
        t % 1000
    )
}

/// Completed years from `birth` to the UTC calendar day of `at_ms`; None
/// when the birth date is after that day.
pub fn age_years(birth: (i64, u32, u32), at_ms: i64) -> Option<i64> {
    let (y, m, d) = civil_from_days(at_ms.div_euclid(MS_PER_DAY));
    let (by, bm, bd) = birth;
    let age = y - by - i64::from((m, d) < (bm, bd));
    (age >= 0 && (y, m, d) >= (by, bm, bd)).then_some(age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_maps_to_ms() {
        // Hand-computed: 2024-03-15 is day 19797 since 1970-01-01
        // (54 years × 365 + 13 leap days + 31 + 29 + 14).
        assert_eq!(19_797, 54 * 365 + 13 + 31 + 29 + 14);
        let day = 19_797 * MS_PER_DAY;
        assert_eq!(parse_time_ms("2024-03-15"), Some(day));
        assert_eq!(parse_time_ms("2024-03"), Some(day - 14 * MS_PER_DAY));
        assert_eq!(
            parse_time_ms("2024"),
            Some(day - (31 + 29 + 14) * MS_PER_DAY)
        );
        assert_eq!(parse_time_ms("1970"), Some(0));
        assert_eq!(
            parse_time_ms("2024-03-15T10:20:30Z"),
            Some(day + (10 * 3600 + 20 * 60 + 30) * 1000)
        );
        assert_eq!(
            parse_time_ms("2024-03-15T10:20:30.1239+02:00"),
            Some(day + (8 * 3600 + 20 * 60 + 30) * 1000 + 123)
        );
        assert_eq!(
            parse_time_ms("2024-03-15T00:00:00.5-05:30"),
            Some(day + (5 * 3600 + 30 * 60) * 1000 + 500)
        );
        // A leap second is the next minute's first second.
        assert_eq!(
            parse_time_ms("2016-12-31T23:59:60Z"),
            parse_time_ms("2017-01-01T00:00:00Z")
        );
        assert_eq!(parse_time_ms("2024-02-29"), Some(day - 15 * MS_PER_DAY));
        assert_eq!(parse_time_ms("1969-12-31T23:59:59.999Z"), Some(-1));
        assert_eq!(parse_time_ms("0001-01-01"), Some(-62_135_596_800_000));
        for ms in [0, -1, 1_700_000_123_456, -62_135_596_800_000] {
            assert_eq!(parse_time_ms(&format_instant(ms)), Some(ms));
        }
        assert_eq!(format_instant(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn malformed_forms_are_rejected() {
        for bad in [
            "",
            "24",
            "0000",
            "2024-",
            "2024-13",
            "2024-00",
            "2023-02-29",
            "2024-04-31",
            "2024-03-15T10:20Z",
            "2024-03-15T10:20:30",
            "2024-03-15T24:00:00Z",
            "2024-03-15T10:60:00Z",
            "2024-03-15T10:20:61Z",
            "2024-03-15T10:20:30.Z",
            "2024-03-15T10:20:30.1234567890Z",
            "2024-03-15T10:20:30+15:00",
            "2024-03-15T10:20:30+14:30",
            "2024-03-15T10:20:30+0200",
            "2024-03T10:20:30Z",
            "2024-03-15 10:20:30Z",
            "2024-03-15Z",
            "+2024",
            "２０２４",
            "2024-03-15T10:20:30ZZ",
        ] {
            assert_eq!(parse_time_ms(bad), None, "{bad:?}");
        }
        assert_eq!(parse_date("2024-03-15T10:20:30Z"), None);
        assert_eq!(parse_date("1980-05"), Some((1980, 5, 1)));
    }

    #[test]
    fn civil_round_trip() {
        for z in [-719_162, -1, 0, 1, 19_797, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(19_797), (2024, 3, 15));
    }

    #[test]
    fn age_is_completed_years_at_the_event_day() {
        let at = parse_time_ms("2024-03-15T23:30:00Z").unwrap();
        // Born 1961-03-15: 63 on the day; 1961-03-16: still 62.
        assert_eq!(age_years((1961, 3, 15), at), Some(63));
        assert_eq!(age_years((1961, 3, 16), at), Some(62));
        // A partial birth date is its period's first day.
        assert_eq!(age_years(parse_date("1961").unwrap(), at), Some(63));
        assert_eq!(age_years(parse_date("1961-04").unwrap(), at), Some(62));
        // Leap-day births turn a year older on 1 March in common years.
        let feb28 = parse_time_ms("2023-02-28").unwrap();
        let mar1 = parse_time_ms("2023-03-01").unwrap();
        assert_eq!(age_years((2000, 2, 29), feb28), Some(22));
        assert_eq!(age_years((2000, 2, 29), mar1), Some(23));
        // Born the same day: 0; after the event: none.
        assert_eq!(age_years((2024, 3, 15), at), Some(0));
        assert_eq!(age_years((2024, 3, 16), at), None);
        // The event's UTC day counts: 2024-03-15T23:30-05:00 is the 16th.
        let late = parse_time_ms("2024-03-15T23:30:00-05:00").unwrap();
        assert_eq!(age_years((1961, 3, 16), late), Some(63));
    }
}
