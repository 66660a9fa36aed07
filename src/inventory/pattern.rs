//! Host patterns, as in `hosts:` and `--limit`: `all`, `*`, group and host
//! names, unions (`a:b`, `a,b`), intersections (`a:&b`), exclusions
//! (`a:!b`), shell globs (`web*`), regular expressions (`~web\d+`) and
//! subscripts (`web[0]`, `web[0:2]`, `web[-1]`).
//!
//! Evaluation follows Ansible's `InventoryManager`: the pattern is split on
//! commas (or, without commas, on colons outside brackets unless the whole
//! is a host address); plain terms apply first, then `&` terms, then `!`
//! terms; with only `&`/`!` terms, `all` is the start. A term matches every
//! group whose name it matches (giving the group's hosts) and, when no group
//! matched or it is a glob/regex, hosts by name. Results keep the order of
//! the terms and of each group, each host once. A term that matches nothing
//! is not an error; the caller decides whether to warn.
//!
//! One difference: `~` expressions use Rust's `regex` syntax, which has no
//! look-around or back-references; such a pattern is a `BadRegex` error.

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;

use super::{hostname, Inventory, LOCALHOST};

/// The longest term a pattern may hold. Host names are at most 253
/// characters; a glob or regular expression longer than this is a mistake,
/// and compiling it (once per term) made a long pattern take seconds.
pub const MAX_TERM: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("a host pattern term may be at most {MAX_TERM} characters; one has {len}")]
    TermTooLong { len: usize },
    #[error("invalid regular expression in host pattern `{pattern}`")]
    BadRegex { pattern: String },
    #[error("no host at index {index} of `{pattern}`: it matches {count} host(s)")]
    SubscriptOutOfRange {
        pattern: String,
        index: i64,
        count: usize,
    },
}

/// Hosts matching `pattern`, in Ansible's order (see the module docs).
pub fn select(inv: &Inventory, pattern: &str) -> Result<Vec<String>, PatternError> {
    let mut terms = split(pattern);
    // A term given twice adds, keeps or drops nothing the first did not;
    // compiling it once per mention made a long repeated list take seconds.
    let mut seen = HashSet::new();
    terms.retain(|t| seen.insert(t.clone()));
    if let Some(t) = terms.iter().find(|t| t.len() > MAX_TERM) {
        return Err(PatternError::TermTooLong { len: t.len() });
    }
    // Plain terms first, then intersections, then exclusions.
    let mut ordered: Vec<String> = terms
        .iter()
        .filter(|t| !t.starts_with(['&', '!']))
        .cloned()
        .collect();
    if ordered.is_empty() {
        ordered.push("all".to_string());
    }
    ordered.extend(terms.iter().filter(|t| t.starts_with('&')).cloned());
    ordered.extend(terms.drain(..).filter(|t| t.starts_with('!')));

    let mut hosts: Vec<String> = Vec::new();
    for term in &ordered {
        if inv.hosts.contains_key(term) {
            hosts.push(term.clone());
            continue;
        }
        let matched = match_term(inv, term)?;
        if term.starts_with('!') {
            let drop: HashSet<&String> = matched.iter().collect();
            hosts.retain(|h| !drop.contains(h));
        } else if term.starts_with('&') {
            let keep: HashSet<&String> = matched.iter().collect();
            hosts.retain(|h| keep.contains(h));
        } else {
            let have: HashSet<String> = hosts.iter().cloned().collect();
            hosts.extend(matched.into_iter().filter(|h| !have.contains(h)));
        }
    }
    let mut seen = HashSet::new();
    hosts.retain(|h| seen.insert(h.clone()));
    Ok(hosts)
}

/// Split a pattern into terms. Commas always separate; without commas a
/// host address (`fe80::1`, `web[1:3]`) stays whole, anything else splits on
/// colons outside `[...]`.
pub fn split(pattern: &str) -> Vec<String> {
    let parts: Vec<String> = if pattern.contains(',') {
        pattern.split(',').map(str::to_string).collect()
    } else if pattern.len() <= MAX_TERM && hostname::parse_address(pattern).is_some() {
        // (A longer one is no address, and matching the address
        // expressions against 64 KiB took seconds: found by the fuzzer.)
        vec![pattern.to_string()]
    } else {
        colon_terms(pattern)
    };
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// One term, without its `&`/`!` prefix, with its subscript applied.
fn match_term(inv: &Inventory, term: &str) -> Result<Vec<String>, PatternError> {
    let term = term.strip_prefix(['&', '!']).unwrap_or(term);
    let (expr, subscript) = split_subscript(term);
    let hosts = enumerate(inv, expr)?;
    let Some(sub) = subscript else {
        return Ok(hosts);
    };
    if hosts.is_empty() {
        return Ok(hosts);
    }
    let len = hosts.len() as i64;
    let out_of_range = |index: i64| PatternError::SubscriptOutOfRange {
        pattern: term.to_string(),
        index,
        count: hosts.len(),
    };
    // Python indexing: a single index may count from the end.
    let single = |i: i64| {
        let at = if i < 0 { len + i } else { i };
        if (0..len).contains(&at) {
            Ok(vec![hosts[at as usize].clone()])
        } else {
            Err(out_of_range(i))
        }
    };
    match sub {
        Subscript::Index(i) => single(i),
        // Ansible reads an end of 0 as "no end" and returns one host.
        Subscript::Range(start, Some(0)) => single(start),
        Subscript::Range(start, end) => {
            let end = end.unwrap_or(len - 1);
            let from = start.min(len) as usize;
            let to = (end + 1).clamp(0, len) as usize;
            Ok(hosts.get(from..to.max(from)).unwrap_or_default().to_vec())
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subscript {
    Index(i64),
    /// Inclusive start and end; no end means "to the last".
    Range(i64, Option<i64>),
}

fn split_subscript(term: &str) -> (&str, Option<Subscript>) {
    if term.starts_with('~') {
        return (term, None);
    }
    let Some(c) = subscript_re().captures(term) else {
        return (term, None);
    };
    let base = c.get(1).map_or(term, |m| m.as_str());
    let num = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<i64>().ok());
    let sub = if let Some(i) = num(2) {
        Subscript::Index(i)
    } else if let Some(start) = num(3) {
        Subscript::Range(start, num(5))
    } else {
        return (term, None);
    };
    (base, Some(sub))
}

/// Hosts of every group the expression names, plus hosts it names.
fn enumerate(inv: &Inventory, expr: &str) -> Result<Vec<String>, PatternError> {
    let matcher = Matcher::new(expr)?;
    let mut results = Vec::new();
    let groups: Vec<&String> = inv.groups.keys().filter(|g| matcher.is_match(g)).collect();
    for g in &groups {
        results.extend(inv.group_hosts(g));
    }
    let special = expr.starts_with('~') || expr.contains(['.', '?', '*', '[']);
    if groups.is_empty() || special {
        results.extend(inv.hosts.keys().filter(|h| matcher.is_match(h)).cloned());
    }
    if results.is_empty() && LOCALHOST.contains(&expr) {
        // A localhost-like host in the inventory stands in for all of them;
        // without one, the name itself is the implicit local host.
        let defined = inv.hosts.keys().find(|h| LOCALHOST.contains(&h.as_str()));
        results.push(defined.cloned().unwrap_or_else(|| expr.to_string()));
    }
    Ok(results)
}

/// A term compiled once: a shell glob matching whole names, or after `~` a
/// regular expression anchored at the start only (Python's `re.match`).
struct Matcher(Regex);

impl Matcher {
    fn new(expr: &str) -> Result<Matcher, PatternError> {
        let source = match expr.strip_prefix('~') {
            Some(re) => format!("^(?:{re})"),
            None => format!("^(?s:{})$", glob_to_regex(expr)),
        };
        // A bound on the compiled size keeps a pathological expression
        // (`(a{1000}){1000}`) from taking seconds to compile.
        regex::RegexBuilder::new(&source)
            .size_limit(1 << 20)
            .build()
            .map(Matcher)
            .map_err(|_| PatternError::BadRegex {
                pattern: expr.to_string(),
            })
    }
    fn is_match(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
}

/// `fnmatch.translate`: `*`, `?`, `[seq]` and `[!seq]`; everything else literal.
fn glob_to_regex(glob: &str) -> String {
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if chars.get(j) == Some(&'!') {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str("\\[");
                    continue;
                }
                let body: Vec<char> = chars[i..j].to_vec();
                i = j + 1;
                let (negate, body) = match body.split_first() {
                    Some(('!', rest)) => (true, rest.to_vec()),
                    _ => (false, body),
                };
                if body.is_empty() {
                    // `[]` never matches; `[!]` matches any one character.
                    out.push_str(if negate { "." } else { "[^\\s\\S]" });
                    continue;
                }
                out.push('[');
                if negate {
                    out.push('^');
                }
                let mut k = 0;
                while k < body.len() {
                    let ch = body[k];
                    if ch == '-' && k > 0 && k + 1 < body.len() {
                        out.push('-');
                    } else {
                        push_class_char(&mut out, ch);
                    }
                    k += 1;
                }
                out.push(']');
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

fn push_class_char(out: &mut String, c: char) {
    if c.is_alphanumeric() || c == '_' {
        out.push(c);
    } else {
        out.push('\\');
        out.push(c);
    }
}

/// The runs of `(?:[^\s:\[\]]|\[[^\]]*\])+`: terms split on colons and
/// spaces outside `[...]`. By hand, in one pass: the regex's `find_iter`
/// rescanned to the end for every unclosed `[`, quadratic in the pattern
/// (64 KiB took seconds; found by the fuzzer).
fn colon_terms(pattern: &str) -> Vec<String> {
    let bytes = pattern.as_bytes();
    // For each position, where the next `]` is.
    let mut next_close = vec![None; bytes.len() + 1];
    for i in (0..bytes.len()).rev() {
        next_close[i] = if bytes[i] == b']' {
            Some(i)
        } else {
            next_close[i + 1]
        };
    }
    let mut terms = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'[' {
            if let Some(close) = next_close[i + 1] {
                start.get_or_insert(i);
                i = close + 1;
                continue;
            }
        }
        let space = unicode_space_len(pattern, i);
        if c == b'[' || c == b']' || c == b':' || c.is_ascii_whitespace() || space > 0 {
            if let Some(s) = start.take() {
                terms.push(pattern[s..i].to_string());
            }
            i += space.max(1);
            continue;
        }
        start.get_or_insert(i);
        i += 1;
    }
    if let Some(s) = start {
        terms.push(pattern[s..].to_string());
    }
    terms
}

/// The length of a non-ASCII whitespace character (which `\s` matches)
/// starting at `i`, or 0.
fn unicode_space_len(text: &str, i: usize) -> usize {
    if text.as_bytes()[i] < 0x80 || !text.is_char_boundary(i) {
        return 0;
    }
    match text[i..].chars().next() {
        Some(c) if c.is_whitespace() => c.len_utf8(),
        _ => 0,
    }
}

fn subscript_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$").expect("valid regex")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn inv() -> Inventory {
        let mut inv = Inventory::default();
        super::super::ini::parse(
            &mut inv,
            Path::new("hosts"),
            "solo\n[web]\nweb[01:04]\n[db]\ndb1\ndb2\nweb04\n[prod:children]\nweb\ndb\n[prod]\np1\n[staging]\nweb01\ns1.example.com\n",
        )
        .unwrap();
        inv.reconcile();
        inv
    }

    fn sel(p: &str) -> Vec<String> {
        inv().select(p).unwrap()
    }

    /// Found by the fuzzer: a 64 KiB term (`~(~(~(...`) took seconds to
    /// compile. Long lists of short terms (`--limit a,b,c,...`) still work.
    #[test]
    fn over_long_terms_are_refused_quickly() {
        let start = std::time::Instant::now();
        let long = format!("&{}", "~(".repeat(30_000));
        assert_eq!(
            inv().select(&long),
            Err(PatternError::TermTooLong { len: 60_001 })
        );
        assert!(matches!(
            inv().select("~(a{1000}){1000}"),
            Err(PatternError::BadRegex { .. })
        ));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(split("a\u{2003}b:é\u{3000}c"), ["a", "b", "é", "c"]);
        let colons = "[a ".repeat(20_000) + "web01:db1";
        assert_eq!(split(&colons).last().map(String::as_str), Some("db1"));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        let list = vec!["db1"; 5000].join(",");
        assert_eq!(inv().select(&list).unwrap(), ["db1"]);
        let start = std::time::Instant::now();
        let globs = vec!["db1web*,&web*,!web0[12]"; 3000].join(",");
        assert_eq!(sel(&globs), sel("db1web*,&web*,!web0[12]"));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn splitting() {
        assert_eq!(split("web:&prod:!db"), ["web", "&prod", "!db"]);
        assert_eq!(split("a, b ,c"), ["a", "b", "c"]);
        assert_eq!(split("web[0:2]:db"), ["web[0:2]", "db"]);
        assert_eq!(split("web[0:2]"), ["web[0:2]"]);
        assert_eq!(split("fe80::1"), ["fe80::1"]);
        assert_eq!(split("a:b,c"), ["a:b", "c"]);
    }

    #[test]
    fn names_groups_and_all() {
        assert_eq!(sel("all").len(), 9);
        assert_eq!(sel("*"), sel("all"));
        assert_eq!(sel("db"), ["db1", "db2", "web04"]);
        assert_eq!(sel("web01"), ["web01"]);
        // The group's own hosts, then its children's.
        assert_eq!(
            sel("prod"),
            ["p1", "web01", "web02", "web03", "web04", "db1", "db2"]
        );
        assert_eq!(sel("ungrouped"), ["solo"]);
        assert!(sel("nothing").is_empty());
    }

    #[test]
    fn operators() {
        assert_eq!(sel("db:web01"), ["db1", "db2", "web04", "web01"]);
        assert_eq!(sel("db,web01"), sel("db:web01"));
        assert_eq!(sel("web:&db"), ["web04"]);
        assert_eq!(sel("web:!db"), ["web01", "web02", "web03"]);
        // Exclusions apply last whatever their position.
        assert_eq!(sel("!db:web"), ["web01", "web02", "web03"]);
        // Only exclusions: start from all.
        assert_eq!(sel("!prod"), ["solo", "s1.example.com"]);
        assert_eq!(sel("prod:&staging:!web02"), ["web01"]);
    }

    #[test]
    fn globs_regexes_and_subscripts() {
        assert_eq!(sel("web0[!34]"), ["web01", "web02"]);
        assert_eq!(sel("db?"), ["db1", "db2"]);
        assert_eq!(sel("*.example.com"), ["s1.example.com"]);
        assert_eq!(sel("d*"), ["db1", "db2", "web04"]);
        assert_eq!(sel("~web0[34]"), ["web03", "web04"]);
        assert_eq!(sel("~(db|solo)"), ["db1", "db2", "web04", "solo"]);
        assert_eq!(sel("web[0:1]"), ["web01", "web02"]);
        assert_eq!(sel("web[2:]"), ["web03", "web04"]);
        assert_eq!(sel("web[-1]"), ["web04"]);
        assert_eq!(sel("web[1]:db[0]"), ["web02", "db1"]);
        assert!(matches!(
            inv().select("web[9]"),
            Err(PatternError::SubscriptOutOfRange {
                index: 9,
                count: 4,
                ..
            })
        ));
        assert!(matches!(
            inv().select("~web(("),
            Err(PatternError::BadRegex { .. })
        ));
    }

    #[test]
    fn implicit_localhost() {
        let inv = inv();
        assert_eq!(inv.select("localhost").unwrap(), ["localhost"]);
        assert!(inv.is_implicit_localhost("localhost"));
        assert!(!inv
            .select("all")
            .unwrap()
            .contains(&"localhost".to_string()));
        assert_eq!(
            inv.host_vars("localhost")["ansible_connection"],
            serde_json::json!("local")
        );
        assert!(inv.group_names("localhost").is_empty());
        assert_eq!(
            inv.select("web01:localhost").unwrap(),
            ["web01", "localhost"]
        );
    }
}
