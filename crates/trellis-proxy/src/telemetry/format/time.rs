//! `%START_TIME%` and `%START_TIME(fmt)%`: UTC, Envoy's default `2026-11-23T23:37:17.457Z`,
//! or a strftime pattern with Envoy's extensions (`%f` nanoseconds, `%1f`..`%9f` that many
//! digits of the fraction, `%s` seconds since the epoch). The pattern is checked once at
//! config time; rendering appends to a buffer and never fails.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// One piece of a parsed time pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    Year,
    Year2,
    Month,
    Day,
    DaySpace,
    DayOfYear,
    Hour,
    Minute,
    Second,
    /// `%E3S`-style: seconds with that many fraction digits.
    SecondFraction(u8),
    /// `%f` (9) or `%Nf`.
    Fraction(u8),
    EpochSeconds,
    MonthName(bool),
    WeekdayName(bool),
    Zone,
    ZoneName,
}

/// A parsed `START_TIME` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat(Vec<Piece>);

impl Default for TimeFormat {
    /// Envoy's default: `%Y-%m-%dT%H:%M:%E3SZ`.
    fn default() -> Self {
        TimeFormat(vec![
            Piece::Year,
            Piece::Literal("-".into()),
            Piece::Month,
            Piece::Literal("-".into()),
            Piece::Day,
            Piece::Literal("T".into()),
            Piece::Hour,
            Piece::Literal(":".into()),
            Piece::Minute,
            Piece::Literal(":".into()),
            Piece::SecondFraction(3),
            Piece::Literal("Z".into()),
        ])
    }
}

impl TimeFormat {
    /// Parses a strftime pattern; unknown specifiers are kept as written (as strftime does).
    pub fn parse(pattern: &str) -> TimeFormat {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let mut spec = String::from("%");
            let piece = match chars.next() {
                Some(d @ '1'..='9') if chars.peek() == Some(&'f') => {
                    chars.next();
                    Some(Piece::Fraction(d as u8 - b'0'))
                }
                Some('E') => {
                    let digits = chars.next_if(|c| c.is_ascii_digit() || *c == '*');
                    match (digits, chars.next_if_eq(&'S')) {
                        (Some('*'), Some(_)) => Some(Piece::SecondFraction(9)),
                        (Some(d), Some(_)) if d.is_ascii_digit() => {
                            Some(Piece::SecondFraction(d as u8 - b'0'))
                        }
                        (d, s) => {
                            spec.push('E');
                            spec.extend(d);
                            spec.extend(s);
                            None
                        }
                    }
                }
                Some(c) if composite(c).is_some() => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.extend(TimeFormat::parse(composite(c).unwrap_or_default()).0);
                    continue;
                }
                Some(c) => simple(c).or_else(|| {
                    spec.push(c);
                    None
                }),
                None => None,
            };
            match piece {
                Some(Piece::Literal(s)) => literal.push_str(&s),
                Some(p) => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(p);
                }
                None => literal.push_str(&spec),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        TimeFormat(pieces)
    }

    /// Appends `t` in this format.
    pub fn write(&self, t: SystemTime, out: &mut String) {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let nanos = since.subsec_nanos();
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        for p in &self.0 {
            // Writing to a String cannot fail.
            let _ = match p {
                Piece::Literal(s) => out.write_str(s),
                Piece::Year => write!(out, "{y:04}"),
                Piece::Year2 => write!(out, "{:02}", y.rem_euclid(100)),
                Piece::Month => write!(out, "{m:02}"),
                Piece::Day => write!(out, "{d:02}"),
                Piece::DaySpace => write!(out, "{d:2}"),
                Piece::DayOfYear => write!(out, "{:03}", days - days_from_civil(y, 1, 1) + 1),
                Piece::Hour => write!(out, "{:02}", rem / 3600),
                Piece::Minute => write!(out, "{:02}", rem / 60 % 60),
                Piece::Second => write!(out, "{:02}", rem % 60),
                Piece::SecondFraction(n) => {
                    let _ = write!(out, "{:02}", rem % 60);
                    if *n > 0 {
                        out.push('.');
                    }
                    fraction(out, nanos, *n)
                }
                Piece::Fraction(n) => fraction(out, nanos, *n),
                Piece::EpochSeconds => write!(out, "{secs}"),
                Piece::MonthName(full) => {
                    let name = MONTHS.get(m as usize - 1).copied().unwrap_or("Jan");
                    out.write_str(if *full { name } else { &name[..3] })
                }
                Piece::WeekdayName(full) => {
                    // 1970-01-01 was a Thursday.
                    let name = WEEKDAYS[((days + 4).rem_euclid(7)) as usize];
                    out.write_str(if *full { name } else { &name[..3] })
                }
                Piece::Zone => out.write_str("+0000"),
                Piece::ZoneName => out.write_str("UTC"),
            };
        }
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn simple(c: char) -> Option<Piece> {
    let lit = |s: &str| Some(Piece::Literal(s.into()));
    match c {
        'Y' => Some(Piece::Year),
        'y' => Some(Piece::Year2),
        'm' => Some(Piece::Month),
        'd' => Some(Piece::Day),
        'e' => Some(Piece::DaySpace),
        'j' => Some(Piece::DayOfYear),
        'H' => Some(Piece::Hour),
        'M' => Some(Piece::Minute),
        'S' => Some(Piece::Second),
        'f' => Some(Piece::Fraction(9)),
        's' => Some(Piece::EpochSeconds),
        'b' | 'h' => Some(Piece::MonthName(false)),
        'B' => Some(Piece::MonthName(true)),
        'a' => Some(Piece::WeekdayName(false)),
        'A' => Some(Piece::WeekdayName(true)),
        'z' => Some(Piece::Zone),
        'Z' => Some(Piece::ZoneName),
        '%' => lit("%"),
        'n' => lit("\n"),
        't' => lit("\t"),
        _ => None,
    }
}

/// `%T`, `%F`, `%D`, `%R` spelled out.
fn composite(c: char) -> Option<&'static str> {
    match c {
        'T' => Some("%H:%M:%S"),
        'F' => Some("%Y-%m-%d"),
        'D' => Some("%m/%d/%y"),
        'R' => Some("%H:%M"),
        _ => None,
    }
}

fn fraction(out: &mut String, nanos: u32, digits: u8) -> std::fmt::Result {
    let digits = u32::from(digits.clamp(1, 9));
    write!(
        out,
        "{:0width$}",
        nanos / 10u32.pow(9 - digits),
        width = digits as usize
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The inverse: (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn render(f: &TimeFormat, millis: u64) -> String {
        let mut out = String::new();
        f.write(UNIX_EPOCH + Duration::from_millis(millis), &mut out);
        out
    }

    #[test]
    fn the_default_is_envoys() {
        let f = TimeFormat::default();
        assert_eq!(render(&f, 1_795_477_037_457), "2026-11-23T23:37:17.457Z");
        assert_eq!(render(&f, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(render(&f, 951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn strftime_and_envoys_extensions() {
        let t = 1_795_477_037_457;
        let f = |p: &str| render(&TimeFormat::parse(p), t);
        assert_eq!(f("%Y/%m/%d %H:%M:%S.%3f"), "2026/11/23 23:37:17.457");
        assert_eq!(f("%s"), "1795477037");
        assert_eq!(f("%f"), "457000000");
        assert_eq!(f("%6f"), "457000");
        assert_eq!(f("%E3S|%E*S"), "17.457|17.457000000");
        assert_eq!(
            f("%a %b %e %j %y %z %Z %%"),
            "Mon Nov 23 327 26 +0000 UTC %"
        );
        assert_eq!(f("%A %B"), "Monday November");
        assert_eq!(f("%Q %E"), "%Q %E");
        assert_eq!(f("%F %T"), "2026-11-23 23:37:17");
        assert_eq!(f("100%"), "100%");
    }
}
