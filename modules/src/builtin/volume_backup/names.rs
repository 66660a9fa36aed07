//! Names on the host: Docker's volume names and globs over them, archive
//! names and their `YYYYmmdd_HHMMSS` timestamps.

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub(super) fn valid_volume_name(n: &str) -> bool {
    let mut b = n.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

/// Anonymous volumes are named by 64 hex digits; `all` leaves them out.
pub(super) fn is_anonymous(n: &str) -> bool {
    n.len() == 64 && n.bytes().all(|c| c.is_ascii_hexdigit())
}

pub(super) fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Shell-style glob match: `*`, `?` and `[...]` (with `!` or `^` negation).
pub(super) fn glob_match(pattern: &str, name: &str) -> bool {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                let mut class = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' && !class.is_empty() {
                        closed = true;
                        break;
                    }
                    class.push(c);
                }
                if !closed {
                    re.push_str(&regex::escape(&format!("[{class}")));
                    continue;
                }
                let (neg, body) = match class.strip_prefix(['!', '^']) {
                    Some(rest) => ("^", rest.to_string()),
                    None => ("", class),
                };
                let body = body.replace('\\', "\\\\").replace('[', "\\[");
                re.push_str(&format!("[{neg}{body}]"));
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(name))
}

/// becomes `opt-deploy-prod`, `herd/busybox:1` `herd-busybox-1`.
pub(super) fn name_for(s: &str) -> String {
    let mut out = String::new();
    for c in s.trim_matches('/').chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// `<name>_<YYYYmmdd_HHMMSS>.tar.gz` split into name and timestamp.
pub(super) fn parse_archive_name(file: &str) -> Option<(&str, &str)> {
    let stem = file.strip_suffix(".tar.gz")?;
    if stem.len() < 17 {
        return None;
    }
    // The name is the host's: the cut may fall inside a multi-byte
    // character, which is then simply not one of our archives.
    let cut = stem.len() - 16;
    let (name, ts) = (stem.get(..cut)?, stem.get(cut..)?);
    let ts = ts.strip_prefix('_')?;
    (!name.is_empty() && parse_ts(ts).is_some()).then_some((name, ts))
}

/// Seconds since the epoch of a `YYYYmmdd_HHMMSS` stamp, read as UTC (both
/// sides of every comparison are the host's local time, so the offset
/// cancels out; a DST change shifts an age by at most an hour).
pub(super) fn parse_ts(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() != 15
        || b[8] != b'_'
        || !ts[..8]
            .bytes()
            .chain(ts[9..].bytes())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| ts[r].parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_timestamps() {
        assert_eq!(
            parse_archive_name("app_data_20240131_235959.tar.gz"),
            Some(("app_data", "20240131_235959"))
        );
        assert_eq!(parse_archive_name("x_20241301_000000.tar.gz"), None);
        assert_eq!(parse_archive_name("_20240101_000000.tar.gz"), None);
        assert_eq!(parse_archive_name("x_20240101_000000.tar"), None);
        // Host-listed names with multi-byte characters where the timestamp
        // would start used to panic the controller (a byte-index split).
        assert_eq!(parse_archive_name("€€€€€€.tar.gz"), None);
        assert_eq!(parse_archive_name("x€€€€€€.tar.gz"), None);
        assert_eq!(
            parse_archive_name("dé_20240101_000000.tar.gz"),
            Some(("dé", "20240101_000000"))
        );
        for n in 0..40 {
            let _ = parse_archive_name(&format!("{}.tar.gz", "é".repeat(n)));
            let _ = parse_archive_name(&format!("a{}.tar.gz", "☃".repeat(n)));
        }
        assert_eq!(
            parse_archive_name(".x_20240101_000000.tar.gz.partial"),
            None
        );
        assert_eq!(parse_ts("19700101_000000"), Some(0));
        assert_eq!(parse_ts("20000301_000000"), Some(951_868_800));
        assert_eq!(
            parse_ts("20240101_000000").map(|a| parse_ts("20240131_000000").unwrap_or(0) - a),
            Some(30 * 86_400)
        );
        assert_eq!(name_for("/opt/deploy/prod/"), "opt-deploy-prod");
        assert_eq!(name_for("herd/busybox:1"), "herd-busybox-1");
        assert!(glob_match("app_*", "app_db"));
        assert!(!glob_match("app_*", "web_app_db"));
        assert!(glob_match("db?", "db1"));
        assert!(glob_match("db[12]", "db2") && !glob_match("db[!12]", "db2"));
        assert!(glob_match("a.b", "a.b") && !glob_match("a.b", "axb"));
        assert!(is_anonymous(&"ab".repeat(32)) && !is_anonymous("pgdata"));
        assert!(valid_volume_name("pg_data-1.x") && !valid_volume_name("../x"));
    }
}
