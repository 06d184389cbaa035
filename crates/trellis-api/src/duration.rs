//! Istio's duration: a proto `Duration` that YAML writes as Go's duration syntax.
//!
//! Istio accepts both proto JSON's `"1.5s"` and Go's `"100ms"`, `"1h30m"`, `"15m"`, so
//! this type parses the Go grammar (a superset) and writes the proto JSON form.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A signed span of time with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    nanos: i128,
}

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

const UNITS: &[(&str, i128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Durations beyond this (about 292 years, Go's limit) are rejected.
const MAX_NANOS: i128 = i64::MAX as i128;

impl Duration {
    /// A duration of whole seconds.
    pub fn from_secs(secs: i64) -> Self {
        Self {
            nanos: i128::from(secs) * 1_000_000_000,
        }
    }

    /// A duration of whole milliseconds.
    pub fn from_millis(millis: i64) -> Self {
        Self {
            nanos: i128::from(millis) * 1_000_000,
        }
    }

    /// The duration in nanoseconds.
    pub fn as_nanos(&self) -> i128 {
        self.nanos
    }

    /// True when the duration is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Converts to a std duration; negative durations become zero.
    pub fn to_std(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::try_from(self.nanos).unwrap_or(0))
    }

    /// Parses Go's duration syntax (`"1h2m3.5s"`, `"100ms"`, `"-1s"`, `"0"`).
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let err = |reason| DurationError {
            input: input.to_string(),
            reason,
        };
        let (negative, mut rest) = match input.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, input.strip_prefix('+').unwrap_or(input)),
        };
        if rest == "0" {
            return Ok(Self::default());
        }
        if rest.is_empty() {
            return Err(err("empty"));
        }
        let mut total: i128 = 0;
        while !rest.is_empty() {
            let (value, after) = split_number(rest).ok_or_else(|| err("expected a number"))?;
            let (unit, scale) = UNITS
                .iter()
                .filter(|(u, _)| after.starts_with(u))
                .max_by_key(|(u, _)| u.len())
                .ok_or_else(|| err("missing or unknown unit (use ns, us, ms, s, m or h)"))?;
            total = total
                .checked_add(value.scaled(*scale).ok_or_else(|| err("too large"))?)
                .filter(|t| *t <= MAX_NANOS)
                .ok_or_else(|| err("too large"))?;
            rest = &after[unit.len()..];
        }
        Ok(Self {
            nanos: if negative { -total } else { total },
        })
    }
}

/// A decimal number split into its whole and fractional digits.
struct Decimal<'a> {
    whole: &'a str,
    frac: &'a str,
}

impl Decimal<'_> {
    fn scaled(&self, scale: i128) -> Option<i128> {
        let whole: i128 = if self.whole.is_empty() {
            0
        } else {
            self.whole.parse().ok()?
        };
        let mut value = whole.checked_mul(scale)?;
        let mut place = scale;
        for digit in self.frac.bytes().take(18) {
            place /= 10;
            value = value.checked_add(i128::from(digit - b'0') * place)?;
        }
        Some(value)
    }
}

fn split_number(s: &str) -> Option<(Decimal<'_>, &str)> {
    let whole_len = s.bytes().take_while(u8::is_ascii_digit).count();
    let (whole, rest) = s.split_at(whole_len);
    let (frac, rest) = match rest.strip_prefix('.') {
        Some(r) => {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            r.split_at(n)
        }
        None => ("", rest),
    };
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    Some((Decimal { whole, frac }, rest))
}

impl fmt::Display for Duration {
    /// Writes proto JSON's form: seconds with up to nine fractional digits, then `s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        let (secs, nanos) = (abs / 1_000_000_000, abs % 1_000_000_000);
        if nanos == 0 {
            write!(f, "{sign}{secs}s")
        } else {
            let frac = format!("{nanos:09}");
            write!(f, "{sign}{secs}.{}s", frac.trim_end_matches('0'))
        }
    }
}

impl std::str::FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_and_proto_forms() {
        let ms = |n| Duration::from_millis(n);
        assert_eq!(Duration::parse("1s").unwrap(), ms(1000));
        assert_eq!(Duration::parse("0.5s").unwrap(), ms(500));
        assert_eq!(Duration::parse("100ms").unwrap(), ms(100));
        assert_eq!(Duration::parse("1h30m").unwrap(), ms(5_400_000));
        assert_eq!(Duration::parse("1.5m").unwrap(), ms(90_000));
        assert_eq!(Duration::parse("0").unwrap(), ms(0));
        assert_eq!(Duration::parse("-2s").unwrap(), ms(-2000));
        assert_eq!(Duration::parse("0.001s").unwrap(), ms(1));
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for bad in ["", "apple", "10", "1x", "s", ".s", "1s2", "99999999999h"] {
            assert!(Duration::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn writes_proto_json_form() {
        assert_eq!(Duration::from_millis(1500).to_string(), "1.5s");
        assert_eq!(Duration::from_secs(10).to_string(), "10s");
        assert_eq!(Duration::from_millis(-1).to_string(), "-0.001s");
    }
}
