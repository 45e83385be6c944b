//! Proleptic Gregorian calendar arithmetic (Howard Hinnant's algorithms) and RFC 3339 parsing.

const MS_PER_DAY: i64 = 86_400_000;

/// Returns the days since 1970-01-01 of a civil date.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = (y - era * 400) as u64; // [0, 399]
    let m = u64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + u64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe as i64 - 719_468
}

/// Returns the civil date (year, month 1-12, day 1-31) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = (if z >= 0 { z } else { z - 146_096 }) / 146_097;
    let doe = (z - era * 146_097) as u64; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe as i64 + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses a fixed-width run of ASCII digits.
fn digits(bytes: &[u8], start: usize, len: usize) -> Option<u32> {
    let run = bytes.get(start..start + len)?;
    run.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Parses an RFC 3339 timestamp (`2026-11-22T03:04:05Z`, `2026-11-22T03:04:05.123456+01:00`)
/// into Unix epoch milliseconds. Fractions beyond milliseconds are truncated toward the past;
/// a leap second (`:60`) counts as the first millisecond of the next minute.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = i64::from(digits(b, 0, 4)?);
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut pos = 19;
    let mut millis = 0i64;
    if b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            if pos - start < 3 {
                millis = millis * 10 + i64::from(b[pos] - b'0');
            }
            pos += 1;
        }
        let taken = pos - start;
        if taken == 0 {
            return None;
        }
        for _ in taken..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(pos)? {
        b'Z' | b'z' if pos + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if pos + 6 == b.len() && b[pos + 3] == b':' => {
            let oh = digits(b, pos + 1, 2)?;
            let om = digits(b, pos + 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = i64::from(oh * 60 + om);
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
    Some(days * MS_PER_DAY + seconds * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_over_a_wide_range() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn parses_rfc3339_variants() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("2025-11-22T03:04:05Z"), Some(1_763_780_645_000));
        assert_eq!(
            parse_rfc3339_ms("2025-11-22T03:04:05.5Z"),
            Some(1_763_780_645_500)
        );
        assert_eq!(
            parse_rfc3339_ms("2025-11-22T03:04:05.123987654z"),
            Some(1_763_780_645_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2025-11-22T04:34:05+01:30"),
            Some(1_763_780_645_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2025-11-21t22:04:05-05:00"),
            Some(1_763_780_645_000)
        );
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59.999Z"), Some(-1));
        assert_eq!(parse_rfc3339_ms("2024-02-29 00:00:00Z"), Some(1_709_164_800_000));
    }

    #[test]
    fn rejects_malformed_rfc3339() {
        for bad in [
            "",
            "2025-11-22",
            "2025-11-22T03:04:05",
            "2025-11-22T03:04:05.Z",
            "2025-13-22T03:04:05Z",
            "2025-02-29T03:04:05Z",
            "2025-11-22T24:04:05Z",
            "2025-11-22T03:04:05+0100",
            "2025-11-22T03:04:05+01:00x",
            "2025-11-22T03:04:05Zx",
            "+025-11-22T03:04:05Z",
            "2025-11-22X03:04:05Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }
}
