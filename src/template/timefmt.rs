//! The `strftime` filter: Python's `time.strftime(fmt, time.localtime(t))`
//! (or `gmtime` with `utc=True`) in the C locale, as Ansible calls it.
//!
//! The local time zone is jiff's system zone (`TZ`, else `/etc/localtime`
//! and the system's tz database, with the files' POSIX rule for times past
//! their last transition); a zone that cannot be read counts as UTC.
//!
//! The formatting stays hand-written: jiff's `strftime` cannot give glibc's
//! output byte for byte. glibc copies a conversion it does not know
//! (`%f`, `%q`, `%N`, `%Q` print as they are) where jiff either fails on it
//! or gives it a meaning of its own; jiff pads `%Y` to four digits (glibc
//! prints year 999 as `999`) and writes `%z` with seconds when an offset
//! has them (glibc: `+0019` for Amsterdam's 1906 offset, jiff `+001932`).

use std::fmt::Write;

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Broken-down time, like C's `struct tm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tm {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday
    pub weekday: u32,
    /// 0-based day of the year
    pub yday: u32,
    /// Seconds east of UTC.
    pub offset: i64,
    pub zone: String,
    pub epoch: i64,
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// `epoch` seconds shown at `offset` seconds east of UTC.
pub(super) fn broken_down(epoch: i64, offset: i64, zone: &str) -> Tm {
    let local = epoch + offset;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = CUM[(month - 1) as usize] + day - 1 + u32::from(month > 2 && is_leap(year));
    Tm {
        year,
        month,
        day,
        hour: (secs / 3600) as u32,
        minute: (secs % 3600 / 60) as u32,
        second: (secs % 60) as u32,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as u32,
        yday,
        offset,
        zone: zone.to_string(),
        epoch,
    }
}

/// The offset and abbreviation in force at `epoch` for the local zone.
pub(super) fn local_offset(epoch: i64) -> (i64, String) {
    match TimeZone::try_system() {
        Ok(tz) => offset_in(&tz, epoch),
        Err(_) => (0, "UTC".into()),
    }
}

/// The offset and abbreviation `tz` has at `epoch`. Past the years jiff
/// covers (-9999..=9999), the rule at the end of its range applies.
fn offset_in(tz: &TimeZone, epoch: i64) -> (i64, String) {
    let second = epoch.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    let at = Timestamp::from_second(second).unwrap_or(Timestamp::UNIX_EPOCH);
    let info = tz.to_offset_info(at);
    (
        i64::from(info.offset().seconds()),
        info.abbreviation().to_string(),
    )
}

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
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

/// ISO 8601 week-based year and week number.
fn iso_week(tm: &Tm) -> (i64, u32) {
    let wday = (tm.weekday + 6) % 7; // Monday = 0
    let week = (tm.yday as i64 - wday as i64 + 10) / 7;
    if week < 1 {
        let prev = tm.year - 1;
        let prev_days = if is_leap(prev) { 366 } else { 365 };
        let prev_tm = Tm {
            year: prev,
            yday: (tm.yday as i64 + prev_days) as u32,
            ..tm.clone()
        };
        return iso_week(&prev_tm);
    }
    let days_in_year = if is_leap(tm.year) { 366 } else { 365 };
    if week == 53 && (tm.yday as i64 - wday as i64) > days_in_year - 4 {
        return (tm.year + 1, 1);
    }
    (tm.year, week as u32)
}

/// C-locale `strftime`. Unknown directives are copied as they are, as glibc
/// does.
pub(super) fn strftime(fmt: &str, tm: &Tm) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(d) = chars.next() else {
            out.push('%');
            break;
        };
        let hour12 = if tm.hour % 12 == 0 { 12 } else { tm.hour % 12 };
        let _ = match d {
            'a' => write!(out, "{}", &DAYS[tm.weekday as usize][..3]),
            'A' => write!(out, "{}", DAYS[tm.weekday as usize]),
            'b' | 'h' => write!(out, "{}", &MONTHS[(tm.month - 1) as usize][..3]),
            'B' => write!(out, "{}", MONTHS[(tm.month - 1) as usize]),
            'c' => write!(out, "{}", strftime("%a %b %e %H:%M:%S %Y", tm)),
            'C' => write!(out, "{:02}", tm.year.div_euclid(100)),
            'd' => write!(out, "{:02}", tm.day),
            'D' => write!(out, "{}", strftime("%m/%d/%y", tm)),
            'e' => write!(out, "{:>2}", tm.day),
            'F' => write!(out, "{}", strftime("%Y-%m-%d", tm)),
            'G' => write!(out, "{}", iso_week(tm).0),
            'g' => write!(out, "{:02}", iso_week(tm).0.rem_euclid(100)),
            'H' => write!(out, "{:02}", tm.hour),
            'I' => write!(out, "{hour12:02}"),
            'j' => write!(out, "{:03}", tm.yday + 1),
            'k' => write!(out, "{:>2}", tm.hour),
            'l' => write!(out, "{hour12:>2}"),
            'm' => write!(out, "{:02}", tm.month),
            'M' => write!(out, "{:02}", tm.minute),
            'n' => writeln!(out),
            'p' => write!(out, "{}", if tm.hour < 12 { "AM" } else { "PM" }),
            'P' => write!(out, "{}", if tm.hour < 12 { "am" } else { "pm" }),
            'r' => write!(out, "{}", strftime("%I:%M:%S %p", tm)),
            'R' => write!(out, "{}", strftime("%H:%M", tm)),
            's' => write!(out, "{}", tm.epoch),
            'S' => write!(out, "{:02}", tm.second),
            't' => write!(out, "\t"),
            'T' => write!(out, "{}", strftime("%H:%M:%S", tm)),
            'u' => write!(out, "{}", if tm.weekday == 0 { 7 } else { tm.weekday }),
            'U' => write!(out, "{:02}", (tm.yday + 7 - tm.weekday) / 7),
            'V' => write!(out, "{:02}", iso_week(tm).1),
            'w' => write!(out, "{}", tm.weekday),
            'W' => write!(out, "{:02}", (tm.yday + 7 - (tm.weekday + 6) % 7) / 7),
            'x' => write!(out, "{}", strftime("%m/%d/%y", tm)),
            'X' => write!(out, "{}", strftime("%H:%M:%S", tm)),
            'y' => write!(out, "{:02}", tm.year.rem_euclid(100)),
            'Y' => write!(out, "{}", tm.year),
            'z' => {
                let sign = if tm.offset < 0 { '-' } else { '+' };
                let a = tm.offset.abs();
                write!(out, "{sign}{:02}{:02}", a / 3600, a % 3600 / 60)
            }
            'Z' => write!(out, "{}", tm.zone),
            '%' => write!(out, "%"),
            other => write!(out, "%{other}"),
        };
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn formats_like_c_strftime() {
        // 2021-03-04 05:06:07 UTC, a Thursday.
        let tm = broken_down(1_614_834_367, 0, "UTC");
        assert_eq!(
            strftime(
                "%Y-%m-%d %H:%M:%S %a %A %b %B %j %e %I %p %y %Z %z %s %%",
                &tm
            ),
            "2021-03-04 05:06:07 Thu Thursday Mar March 063  4 05 AM 21 UTC +0000 1614834367 %"
        );
        assert_eq!(
            strftime("%c|%x|%X|%F|%T|%D", &tm),
            "Thu Mar  4 05:06:07 2021|03/04/21|05:06:07|2021-03-04|05:06:07|03/04/21"
        );
        assert_eq!(strftime("%U %W %V %G %u %w", &tm), "09 09 09 2021 4 4");
        // 2021-01-01 is in ISO week 53 of 2020.
        let tm = broken_down(1_609_459_200, 0, "UTC");
        assert_eq!(strftime("%V %G %U %W", &tm), "53 2020 00 00");
        let tm = broken_down(0, 3600, "CET");
        assert_eq!(strftime("%H:%M %Z %z", &tm), "01:00 CET +0100");
        assert_eq!(broken_down(-1, 0, "UTC").year, 1969);
    }

    #[test]
    fn reads_the_tz_database() {
        if let Ok(tz) = TimeZone::get("Europe/Berlin") {
            // 2021-07-01 12:00 UTC: summer time.
            assert_eq!(offset_in(&tz, 1_625_140_800), (7200, "CEST".into()));
            // 2021-01-01 12:00 UTC: winter time.
            assert_eq!(offset_in(&tz, 1_609_502_400), (3600, "CET".into()));
            // 2050-07-02 12:00 UTC, past the file's last transition (2037):
            // summer time by the file's POSIX rule, as glibc says.
            assert_eq!(offset_in(&tz, 2_540_376_000), (7200, "CEST".into()));
        }
    }
}
