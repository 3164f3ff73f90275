//! UTC calendar periods for quotas: a day or a month, named by a stable number so that
//! counters are keyed by the period they count and reset at its boundary by themselves.

/// A quota period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// The period containing `unix_secs`: days since the epoch, or `year * 12 + month - 1`.
    pub fn id(self, unix_secs: u64) -> u64 {
        let days = unix_secs / 86_400;
        match self {
            Period::Day => days,
            Period::Month => {
                let (y, m, _) = civil_from_days(days);
                y * 12 + (m - 1)
            }
        }
    }

    /// Unix seconds at which the period containing `unix_secs` ends.
    pub fn end(self, unix_secs: u64) -> u64 {
        let days = unix_secs / 86_400;
        match self {
            Period::Day => (days + 1) * 86_400,
            Period::Month => {
                let (y, m, _) = civil_from_days(days);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(ny, nm, 1) * 86_400
            }
        }
    }

    /// The period's length in seconds (the month's actual length).
    pub fn length(self, unix_secs: u64) -> u64 {
        match self {
            Period::Day => 86_400,
            Period::Month => {
                let days = unix_secs / 86_400;
                let (y, m, _) = civil_from_days(days);
                self.end(unix_secs) - days_from_civil(y, m, 1) * 86_400
            }
        }
    }
}

/// (year, month 1-12, day 1-31) of a day number; Howard Hinnant's civil_from_days for
/// days on or after 1970-01-01.
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Day number of a date on or after 1970-01-01.
pub fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_follow_the_utc_calendar() {
        // 2026-02-28T23:59:59Z and the second after.
        let last = days_from_civil(2026, 2, 28) * 86_400 + 86_399;
        assert_eq!(civil_from_days(last / 86_400), (2026, 2, 28));
        assert_eq!(Period::Day.id(last) + 1, Period::Day.id(last + 1));
        assert_eq!(Period::Month.id(last) + 1, Period::Month.id(last + 1));
        assert_eq!(Period::Month.end(last), last + 1);
        assert_eq!(Period::Month.length(last), 28 * 86_400);
        assert_eq!(Period::Day.end(last), last + 1);
        // December rolls into January.
        let dec = days_from_civil(2026, 12, 31) * 86_400;
        assert_eq!(Period::Month.end(dec), days_from_civil(2027, 1, 1) * 86_400);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
