//! Host names as inventories write them: an optional `:port` suffix
//! (`web1:2222`, `[::1]:22`) and `[a:b]` / `[a:b:step]` ranges
//! (`web[01:10]`, `db-[a:c]`) that expand to several hosts.
//!
//! The rules follow Ansible's `parse_address` and `expand_hostname_range`:
//! the port is split off only when what remains is a valid host name or IP
//! address (possibly with ranges); otherwise the text is taken whole, as
//! Ansible does. Ranges expand left to right, zero-padded when the start is.

use std::net::Ipv6Addr;
use std::sync::OnceLock;

use regex::Regex;

/// A bound on what one inventory line may expand to, so a typo like
/// `web[1:99999999999]` is an error instead of exhausting memory.
/// (A million took seconds to load: more than a typo deserves.)
pub(super) const MAX_HOSTS: usize = 100_000;

/// A bound on the bytes of host names one line may expand to (a long name
/// times a large range).
pub(super) const MAX_NAME_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum RangeError {
    #[error("a host range must be `[begin:end]` or `[begin:end:step]`")]
    Shape,
    #[error("a host range must have an end value")]
    NoEnd,
    #[error("a zero-padded host range needs begin and end of equal length")]
    PaddingMismatch,
    #[error("a host range must have begin <= end")]
    Backwards,
    #[error("a host range must be numbers or single letters")]
    NotANumber,
    #[error("a host range step must be a positive number")]
    BadStep,
    #[error("a host range `[` has no closing `]`")]
    Unclosed,
    #[error("a host range may expand to at most {MAX_HOSTS} hosts")]
    TooLarge,
    #[error("a host range may expand to at most {} MiB of host names", MAX_NAME_BYTES >> 20)]
    TooLong,
}

/// Split `host:port` / `[host]:port`. `None` when the text is not a host
/// name or address (with optional ranges) at all.
pub(super) fn parse_address(text: &str) -> Option<(String, Option<i64>)> {
    let mut address = text.to_string();
    let mut port = None;
    for re in [bracketed_hostport(), hostport()] {
        if let Some(c) = re.captures(&address) {
            port = c[2].parse::<i64>().ok();
            address = c[1].to_string();
        }
    }
    let valid = hostname_re().is_match(&address) || is_ipv6_with_ranges(&address);
    valid.then_some((address, port))
}

/// Expand one host entry into host names and an optional port.
pub(super) fn expand(text: &str) -> Result<(Vec<String>, Option<i64>), RangeError> {
    let (pattern, port) = parse_address(text).unwrap_or_else(|| (text.to_string(), None));
    let names = if pattern.contains('[') {
        expand_ranges(&pattern)?
    } else {
        vec![pattern]
    };
    Ok((names, port))
}

/// Expand every `[..]` range of a line, left to right. The number of
/// hosts (and the bytes of their names) is known from the ranges alone, so
/// a line that would expand too far is refused before anything is built:
/// `w[1:2]` written 64 times is 2^64 hosts, not a long wait.
fn expand_ranges(line: &str) -> Result<Vec<String>, RangeError> {
    // Literal text and ranges alternate: text, range, text, ..., text.
    let mut pieces: Vec<Vec<String>> = Vec::new();
    let mut total: usize = 1;
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let close = rest[open..]
            .find(']')
            .map(|i| open + i)
            .ok_or(RangeError::Unclosed)?;
        pieces.push(vec![rest[..open].to_string()]);
        let items = range_items(&rest[open + 1..close])?;
        total = total
            .checked_mul(items.len())
            .filter(|&n| n <= MAX_HOSTS)
            .ok_or(RangeError::TooLarge)?;
        pieces.push(items);
        rest = &rest[close + 1..];
    }
    pieces.push(vec![rest.to_string()]);
    // No name is longer than the line it came from.
    if total.saturating_mul(line.len()) > MAX_NAME_BYTES {
        return Err(RangeError::TooLong);
    }
    let mut hosts = vec![String::new()];
    for alternatives in &pieces {
        hosts = hosts
            .iter()
            .flat_map(|h| alternatives.iter().map(move |a| format!("{h}{a}")))
            .collect();
    }
    Ok(hosts)
}

/// The items of one range (`01:10`, `a:c`, `1:10:2`), without brackets.
fn range_items(range: &str) -> Result<Vec<String>, RangeError> {
    let bounds: Vec<&str> = range.split(':').collect();
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err(RangeError::Shape);
    }
    let beg = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    if end.is_empty() {
        return Err(RangeError::NoEnd);
    }
    let step: usize = match bounds.get(2) {
        None => 1,
        Some(s) => s.parse().map_err(|_| RangeError::BadStep)?,
    };
    if step == 0 {
        return Err(RangeError::BadStep);
    }
    let width = if beg.len() > 1 && beg.starts_with('0') {
        if beg.len() != end.len() {
            return Err(RangeError::PaddingMismatch);
        }
        beg.len()
    } else {
        0
    };
    const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let is_letter = |s: &str| s.len() == 1 && LETTERS.contains(s);
    if is_letter(beg) && is_letter(end) {
        let (b, e) = (
            LETTERS.find(beg).unwrap_or(0),
            LETTERS.find(end).unwrap_or(0),
        );
        if b > e {
            return Err(RangeError::Backwards);
        }
        return Ok(LETTERS[b..=e]
            .chars()
            .step_by(step)
            .map(String::from)
            .collect());
    }
    let b: i64 = beg.parse().map_err(|_| RangeError::NotANumber)?;
    let e: i64 = end.parse().map_err(|_| RangeError::NotANumber)?;
    // Ansible silently expands `[5:1]` to nothing; a line that adds no
    // host is always a mistake, so it is an error here.
    if b > e {
        return Err(RangeError::Backwards);
    }
    if (i128::from(e) - i128::from(b)) / step as i128 >= MAX_HOSTS as i128 {
        return Err(RangeError::TooLarge);
    }
    Ok((b..=e)
        .step_by(step)
        .map(|n| format!("{n:0width$}"))
        .collect())
}

fn bracketed_hostport() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^\[(.+)\]:([0-9]+)$").expect("valid regex"))
}

fn hostport() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // Anything but `:[]`, or a whole bracketed range, then `:port`.
        Regex::new(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$").expect("valid regex")
    })
}

const ALNUM_RANGE: &str = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]";
const NUM_RANGE: &str = r"\[[0-9]+:[0-9]+(?::[0-9]+)?\]";

fn hostname_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // DNS-like labels of word characters and dashes that neither start
        // nor end with `-`/`_`, where any piece may be a range.
        let r = ALNUM_RANGE;
        let label = format!(r"(?:[^\W_]|{r}|(?:\w|{r})(?:[\w-]|{r})*(?:[^\W_]|{r}))");
        Regex::new(&format!(r"(?i)^{label}(?:\.{label})*$")).expect("valid regex")
    })
}

/// An IPv6 address, where any 16-bit group may be a numeric range.
fn is_ipv6_with_ranges(text: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(NUM_RANGE).expect("valid regex"));
    text.contains(':') && re.replace_all(text, "0").parse::<Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        expand(text).unwrap().0
    }

    #[test]
    fn ports() {
        assert_eq!(
            parse_address("web1:2222"),
            Some(("web1".into(), Some(2222)))
        );
        assert_eq!(parse_address("[::1]:22"), Some(("::1".into(), Some(22))));
        assert_eq!(parse_address("fe80::1"), Some(("fe80::1".into(), None)));
        assert_eq!(
            parse_address("web[01:03]:22"),
            Some(("web[01:03]".into(), Some(22)))
        );
        assert_eq!(parse_address("10.0.0.1"), Some(("10.0.0.1".into(), None)));
        assert_eq!(parse_address("web-"), None);
        assert_eq!(parse_address("web*"), None);
        assert_eq!(parse_address("a:b"), None);
        // Not a host name: Ansible keeps the whole text and no port.
        assert_eq!(
            expand("bad_:22").unwrap(),
            (vec!["bad_:22".to_string()], None)
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(names("web[01:03]"), ["web01", "web02", "web03"]);
        assert_eq!(names("web[1:3]"), ["web1", "web2", "web3"]);
        assert_eq!(names("db-[a:c]"), ["db-a", "db-b", "db-c"]);
        assert_eq!(names("n[1:10:4]"), ["n1", "n5", "n9"]);
        assert_eq!(names("n[01:10:3]"), ["n01", "n04", "n07", "n10"]);
        assert_eq!(names("[:2].x"), ["0.x", "1.x", "2.x"]);
        assert_eq!(
            names("r[1:2]-[a:b].dc"),
            ["r1-a.dc", "r1-b.dc", "r2-a.dc", "r2-b.dc"]
        );
        assert_eq!(names("10.0.0.[8:9]"), ["10.0.0.8", "10.0.0.9"]);
        assert_eq!(names("[y:B]"), ["y", "z", "A", "B"]);
    }

    #[test]
    fn bad_ranges() {
        assert_eq!(expand("w[1:]"), Err(RangeError::NoEnd));
        assert_eq!(expand("w[01:100]"), Err(RangeError::PaddingMismatch));
        assert_eq!(expand("w[c:a]"), Err(RangeError::Backwards));
        assert_eq!(expand("w[5:1]"), Err(RangeError::Backwards));
        assert_eq!(expand("w[1:3:0]"), Err(RangeError::BadStep));
        assert_eq!(expand("w[1:x]"), Err(RangeError::NotANumber));
        assert_eq!(expand("w[1]"), Err(RangeError::Shape));
        assert_eq!(expand("w[1:2"), Err(RangeError::Unclosed));
        assert_eq!(expand("w[1:99999999999]"), Err(RangeError::TooLarge));
        assert_eq!(expand("w[0:999]-[0:9999]"), Err(RangeError::TooLarge));
    }

    /// Found by the fuzzer: 64 two-host ranges on one line is 2^64 hosts;
    /// it took seconds (expanding a million names first) before failing.
    #[test]
    fn many_small_ranges_on_one_line_are_refused_at_once() {
        let line = "web[1:2]".repeat(64);
        let start = std::time::Instant::now();
        assert_eq!(expand(&line), Err(RangeError::TooLarge));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        let long = format!("w[0:99999]{}", "x".repeat(1000));
        assert_eq!(expand(&long), Err(RangeError::TooLong));
    }
}
