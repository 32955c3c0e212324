//! Values as other tools write them in CSV: what counts as missing, which
//! texts are numbers, dates and timestamps, and how a label is spelled.
//!
//! `resynth validate` is meant for any generator's output, and each tool has
//! its habits: pandas writes `NaN` or an empty field for missing values,
//! `True`/`False`, integer-coded categories as `1.0` once a column held a
//! missing value, and timestamps as `2020-01-31 08:15:00`; R's `write.csv`
//! (synthpop) writes `NA`, `TRUE`/`FALSE` and quoted dates; SDV writes ids as
//! `sdv-id-…` strings. The training file decides each column's kind (see
//! [`ColumnFormat::infer`]); the other files are read with it, so one
//! spelling of a value means one thing in all three.
//!
//! Dates are kept as days since 1970-01-01 and timestamps as seconds since
//! 1970-01-01T00:00:00Z (both as numbers, so every numeric operator applies),
//! and written back in ISO 8601, so a file `resynth synthesize` writes reads
//! back the same way.

use serde::{Deserialize, Serialize};

/// What a column of a file holds, decided from the training file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnFormat {
    /// Numbers; `integer` when every training value is a whole number (then
    /// written without a decimal point).
    Number { integer: bool },
    /// Calendar dates `YYYY-MM-DD`, as days since 1970-01-01.
    Date,
    /// Date and time `YYYY-MM-DD[T ]HH:MM[:SS[.fff]][Z|±HH:MM]`, as seconds
    /// since the epoch (UTC).
    Timestamp,
    /// Labels (categories).
    Text,
}

impl ColumnFormat {
    /// The format of a training column from its present (non-missing)
    /// values: numbers if every one parses as a number, else dates, else
    /// timestamps, else text. A column with no value at all is text.
    pub fn infer<'a>(present: impl Iterator<Item = &'a str> + Clone) -> ColumnFormat {
        let mut any = false;
        let mut integer = true;
        let mut number = true;
        for v in present.clone() {
            any = true;
            match parse_number(v) {
                Some(x) => integer &= x.fract() == 0.0,
                None => {
                    number = false;
                    break;
                }
            }
        }
        if !any {
            return ColumnFormat::Text;
        }
        if number {
            return ColumnFormat::Number { integer };
        }
        if present.clone().all(|v| parse_date(v).is_some()) {
            return ColumnFormat::Date;
        }
        if present.clone().all(|v| parse_timestamp(v).is_some()) {
            return ColumnFormat::Timestamp;
        }
        ColumnFormat::Text
    }

    /// Parses one present value; `None` when it does not fit.
    pub fn parse(self, v: &str) -> Option<f64> {
        match self {
            ColumnFormat::Number { .. } => parse_number(v),
            ColumnFormat::Date => parse_date(v).map(|d| d as f64),
            // A date alone in a timestamp column is its midnight.
            ColumnFormat::Timestamp => {
                parse_timestamp(v).or_else(|| parse_date(v).map(|d| d as f64 * 86_400.0))
            }
            ColumnFormat::Text => None,
        }
    }

    /// What a value of this format looks like, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            ColumnFormat::Number { .. } => "a number",
            ColumnFormat::Date => "a date like 2016-06-20",
            ColumnFormat::Timestamp => "a timestamp like 2016-06-20T08:15:00",
            ColumnFormat::Text => "a label",
        }
    }

    /// A stored value written back as text (`None` for a missing value).
    pub fn format(self, x: f64) -> Option<String> {
        if !x.is_finite() {
            return None;
        }
        Some(match self {
            ColumnFormat::Number { integer: true } => format!("{}", x.round()),
            ColumnFormat::Number { integer: false } | ColumnFormat::Text => format!("{x}"),
            ColumnFormat::Date => format_date(x.round() as i64),
            ColumnFormat::Timestamp => format_timestamp(x),
        })
    }
}

/// Spellings of a missing value: an empty field and pandas' default
/// `na_values` (which include R's `NA`).
const MISSING: [&str; 17] = [
    "", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "None", "<NA>", "#N/A",
    "#NA", "NaT", "-1.#IND", "1.#QNAN",
];

/// Whether a field is a missing value (surrounding blanks ignored).
pub fn is_missing(v: &str) -> bool {
    MISSING.contains(&v.trim())
}

/// A finite number in decimal or scientific notation (`57`, `57.0`,
/// `-1.5e3`, ` 3 `); not `inf`, not hexadecimal, not `1,5`.
pub fn parse_number(v: &str) -> Option<f64> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && v.bytes().any(|b| b.is_ascii_digit());
    ok.then(|| v.parse::<f64>().ok())
        .flatten()
        .filter(|x| x.is_finite())
}

/// A label as it is compared: integer codes written as floats (`1.0`,
/// `2.00`) become `1`, `2`, and booleans in any case (`True`, `TRUE`) become
/// `true` / `false`. Leading zeros are kept (`021` is a zip3, not 21).
pub fn canonical_label(v: &str) -> String {
    let t = v.trim();
    if let Some((whole, frac)) = t.split_once('.')
        && !whole.is_empty()
        && whole
            .trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit())
        && !whole.trim_start_matches('-').is_empty()
        && !frac.is_empty()
        && frac.bytes().all(|b| b == b'0')
    {
        return whole.to_string();
    }
    if t.eq_ignore_ascii_case("true") {
        return "true".into();
    }
    if t.eq_ignore_ascii_case("false") {
        return "false".into();
    }
    t.to_string()
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian), after
/// Howard Hinnant's `days_from_civil`.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `YYYY-MM-DD` (a valid calendar date) as days since 1970-01-01.
pub fn parse_date(v: &str) -> Option<i64> {
    let v = v.trim();
    let mut parts = v.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (y, m, d) = (digits(y, 4)? as i64, digits(m, 2)?, digits(d, 2)?);
    ((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)).then(|| days_from_civil(y, m, d))
}

/// `YYYY-MM-DD[T ]HH:MM[:SS[.fff…]][Z|±HH:MM]` as seconds since the epoch
/// (UTC; an offset is subtracted, a time without one is taken as UTC).
pub fn parse_timestamp(v: &str) -> Option<f64> {
    let v = v.trim();
    let (date, rest) = v.split_at_checked(10)?;
    let days = parse_date(date)?;
    let rest = rest.strip_prefix(['T', ' '])?;
    // The offset is a trailing `Z` or `±HH:MM`.
    let (clock, offset) = if let Some(clock) = rest.strip_suffix('Z') {
        (clock, "")
    } else {
        match rest.len().checked_sub(6).map(|i| rest.split_at(i)) {
            Some((clock, o)) if o.starts_with(['+', '-']) => (clock, o),
            _ => (rest, ""),
        }
    };
    let mut hms = clock.split(':');
    let h = digits(hms.next()?, 2)?;
    let mi = digits(hms.next()?, 2)?;
    let sec: f64 = match hms.next() {
        Some(s) => {
            let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
            let whole = digits(whole, 2)? as f64;
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            whole
                + if frac.is_empty() {
                    0.0
                } else {
                    format!("0.{frac}").parse::<f64>().ok()?
                }
        }
        None => 0.0,
    };
    if hms.next().is_some() || h > 23 || mi > 59 || sec >= 61.0 {
        return None;
    }
    let shift = match offset {
        "" => 0.0,
        o => {
            let sign = if o.starts_with('-') { -1.0 } else { 1.0 };
            let (oh, om) = o[1..].split_once(':').unwrap_or((&o[1..], "00"));
            let (oh, om) = (digits(oh, 2)?, digits(om, 2)?);
            sign * (oh as f64 * 3600.0 + om as f64 * 60.0)
        }
    };
    Some(days as f64 * 86_400.0 + h as f64 * 3600.0 + mi as f64 * 60.0 + sec - shift)
}

/// Day number → `YYYY-MM-DD`.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Seconds since the epoch → `YYYY-MM-DDTHH:MM:SS` (UTC; milliseconds when
/// the value has them).
pub fn format_timestamp(secs: f64) -> String {
    let millis = (secs * 1000.0).round() as i64;
    let (days, ms) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (mi, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let base = format!("{}T{h:02}:{mi:02}:{s:02}", format_date(days));
    if frac == 0 {
        base
    } else {
        format!("{base}.{frac:03}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_spellings_of_pandas_and_r() {
        for v in [
            "", " ", "NA", "NaN", "nan", "null", "NULL", "None", "<NA>", "#N/A", "NaT",
        ] {
            assert!(is_missing(v), "{v:?}");
        }
        for v in ["0", "na", "N", "-", "none"] {
            assert!(!is_missing(v), "{v:?}");
        }
    }

    #[test]
    fn numbers_as_tools_write_them() {
        assert_eq!(parse_number("57"), Some(57.0));
        assert_eq!(parse_number("57.0"), Some(57.0));
        assert_eq!(parse_number(" -1.5e3 "), Some(-1500.0));
        for v in [
            "inf",
            "NaN",
            "1,5",
            "0x10",
            "sdv-id-3",
            "2016-06-20",
            "e",
            ".",
        ] {
            assert_eq!(parse_number(v), None, "{v:?}");
        }
    }

    #[test]
    fn labels_compare_across_spellings() {
        assert_eq!(canonical_label("1.0"), "1");
        assert_eq!(canonical_label("-2.00"), "-2");
        assert_eq!(canonical_label("021"), "021");
        assert_eq!(canonical_label("1.5"), "1.5");
        assert_eq!(canonical_label("TRUE"), "true");
        assert_eq!(canonical_label("False"), "false");
        assert_eq!(canonical_label(".0"), ".0");
    }

    /// Day numbers checked against Python's `date.toordinal() − 719163`.
    #[test]
    fn dates_round_trip_through_day_numbers() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2016-06-20"), Some(16_972));
        assert_eq!(parse_date("2000-02-29"), Some(11_016));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_date("1900-03-01"), Some(-25_508));
        assert_eq!(parse_date("2001-02-29"), None);
        assert_eq!(parse_date("2016-13-01"), None);
        assert_eq!(parse_date("6015"), None);
        for d in [-719_162i64, -25_508, -1, 0, 6015, 16_972, 2_932_896] {
            assert_eq!(parse_date(&format_date(d)), Some(d), "{d}");
        }
        assert_eq!(format_date(6015), "1986-06-21");
    }

    #[test]
    fn timestamps_in_iso_and_pandas_form() {
        // 2020-01-31T08:15:00Z = 1580458500 (date -u -d ... +%s).
        assert_eq!(
            parse_timestamp("2020-01-31T08:15:00Z"),
            Some(1_580_458_500.0)
        );
        assert_eq!(
            parse_timestamp("2020-01-31 08:15:00"),
            Some(1_580_458_500.0)
        );
        assert_eq!(parse_timestamp("2020-01-31T08:15"), Some(1_580_458_500.0));
        assert_eq!(
            parse_timestamp("2020-01-31T10:15:00+02:00"),
            Some(1_580_458_500.0)
        );
        assert_eq!(
            parse_timestamp("2020-01-31T03:15:00-05:00"),
            Some(1_580_458_500.0)
        );
        assert_eq!(
            parse_timestamp("2020-01-31T08:15:00.250"),
            Some(1_580_458_500.25)
        );
        assert_eq!(parse_timestamp("2020-01-31"), None);
        assert_eq!(parse_timestamp("2020-01-31T25:00:00"), None);
        assert_eq!(
            format_timestamp(1_580_458_500.25),
            "2020-01-31T08:15:00.250"
        );
        assert_eq!(format_timestamp(1_580_458_500.0), "2020-01-31T08:15:00");
        assert_eq!(
            ColumnFormat::Timestamp.parse("2020-01-31"),
            Some(1_580_428_800.0)
        );
    }

    #[test]
    fn formats_are_inferred_from_training_values() {
        let infer = |v: &[&str]| ColumnFormat::infer(v.iter().copied());
        assert_eq!(
            infer(&["1", "2", "3"]),
            ColumnFormat::Number { integer: true }
        );
        assert_eq!(
            infer(&["1", "2.5"]),
            ColumnFormat::Number { integer: false }
        );
        assert_eq!(infer(&["2016-06-20", "1999-01-01"]), ColumnFormat::Date);
        assert_eq!(
            infer(&["2016-06-20 08:00:00", "2016-06-21T09:30:00"]),
            ColumnFormat::Timestamp
        );
        assert_eq!(infer(&["a", "1"]), ColumnFormat::Text);
        assert_eq!(infer(&[]), ColumnFormat::Text);
        assert_eq!(
            ColumnFormat::Number { integer: true }
                .format(57.0)
                .as_deref(),
            Some("57")
        );
        assert_eq!(
            ColumnFormat::Date.format(16_972.0).as_deref(),
            Some("2016-06-20")
        );
        assert_eq!(ColumnFormat::Date.format(f64::NAN), None);
    }
}
