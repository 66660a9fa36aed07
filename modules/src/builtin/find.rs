//! `find`: list the files under directories that match name, age, size,
//! type, mode and content filters. It never changes anything: the plan is
//! empty and carries the result, as `stat`'s does.
//!
//! One probe lists every entry of every path with GNU `find -printf` (its
//! `lstat` fields, and whether it leads to a directory), bounded by
//! `recurse`/`depth`; the filters run here, in the order Ansible's
//! `os.walk` visits entries (a directory's files, then its directories,
//! then each directory's own entries), so `limit`, `examined` and the order
//! of `files` come out as in Ansible. Only when `contains` or
//! `get_checksum` asks for file contents does a second round trip read the
//! candidates (their content, base64, or their sha1).
//!
//! Differences from Ansible: with `follow`, an entry reached through a
//! symlink is described by what the link points to (Ansible describes the
//! link); `use_regex` and `contains` take Rust `regex` syntax; a file that
//! is not valid UTF-8 never matches `contains` (Ansible skips the whole
//! path with a warning).

use std::collections::{BTreeMap, HashMap};

use regex::bytes::Regex;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::account::de_opt_list;
use crate::params::{apply_symbolic, de_bool, de_opt_string};
use crate::shell_quote::quote_path;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `file_type` parameter's values.
pub enum FileType {
    #[default]
    /// Regular files.
    File,
    /// Directories.
    Directory,
    /// Symbolic links.
    Link,
    /// Everything.
    Any,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `age_stamp` parameter's values.
pub enum AgeStamp {
    /// Last access.
    Atime,
    /// Last status change.
    Ctime,
    #[default]
    /// Last modification.
    Mtime,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `find`: what `herd doc` shows, and what the parser takes.
pub struct FindParams {
    /// The directories to search (a list, or a comma-separated string).
    #[serde(alias = "name", alias = "path", deserialize_with = "de_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub paths: Vec<String>,
    /// Shell globs (or regular expressions with `use_regex`) an entry's base name must match
    /// one of; none means every name.
    #[serde(default, alias = "pattern", deserialize_with = "de_opt_list")]
    #[schemars(with = "Option<crate::doc::shapes::StringOrList>")]
    pub patterns: Option<Vec<String>>,
    /// Globs (or regular expressions) of base names to leave out of what `patterns` matched.
    #[serde(default, alias = "exclude", deserialize_with = "de_opt_list")]
    #[schemars(with = "Option<crate::doc::shapes::StringOrList>")]
    pub excludes: Option<Vec<String>>,
    /// A regular expression a regular file's content must match (at the start of a line, or
    /// anywhere with `read_whole_file`). Only with `file_type: file`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub contains: Option<String>,
    /// Match `contains` against the whole file instead of line by line.
    #[serde(default, deserialize_with = "de_bool")]
    pub read_whole_file: bool,
    /// Which kind of entry to return.
    #[serde(default)]
    pub file_type: FileType,
    /// Entries at least this old (`2d`, `3h`, `10m`, `1w`, seconds without a unit); a negative
    /// age means at most this old.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub age: Option<String>,
    /// Which time `age` is measured from.
    #[serde(default)]
    pub age_stamp: AgeStamp,
    /// Regular files at least this big (`10k`, `1m`, `2g`, bytes without a unit); negative
    /// means at most this big.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub size: Option<String>,
    /// Descend into subdirectories.
    #[serde(default, deserialize_with = "de_bool")]
    pub recurse: bool,
    /// Include entries whose name starts with a dot.
    #[serde(default, deserialize_with = "de_bool")]
    pub hidden: bool,
    /// Descend into directories through symbolic links.
    #[serde(default, deserialize_with = "de_bool")]
    pub follow: bool,
    /// Return each regular file's SHA-1 as `checksum`.
    #[serde(default, alias = "checksum", deserialize_with = "de_bool")]
    pub get_checksum: bool,
    /// `patterns` and `excludes` are regular expressions matched at the start of the name.
    #[serde(default, deserialize_with = "de_bool")]
    pub use_regex: bool,
    /// How many levels to descend with `recurse` (1: only the entries of each path); 0 or
    /// unset is no limit.
    #[serde(default, deserialize_with = "crate::params::de_opt_u64")]
    pub depth: Option<u64>,
    /// Entries with these permission bits: an octal string (`"0644"`) or a symbolic mode.
    pub mode: Option<String>,
    /// With `mode`, the permissions must be exactly these (else any of the bits will do); the
    /// default is exact.
    #[serde(default, deserialize_with = "crate::params::de_opt_bool")]
    pub exact_mode: Option<bool>,
    /// The encoding `contains` reads files in; only UTF-8 is supported.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub encoding: Option<String>,
    /// Stop after this many matches.
    #[serde(default, deserialize_with = "crate::params::de_opt_u64")]
    pub limit: Option<u64>,
}

/// `paths`: a list, or a comma-separated string; required and not empty.
fn de_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match de_opt_list(d)? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(serde::de::Error::custom("expected at least one path")),
    }
}

/// The `find` module.
pub struct Find;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Find::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// One entry as `find -printf` described it.
#[derive(Debug, Clone)]
struct Entry {
    /// The normalized path.
    path: String,
    /// `find`'s `%y`: `f`, `d`, `l`, `c`, `b`, `p`, `s`.
    kind: char,
    /// It is a directory or leads to one (`%Y`), as `os.walk` sorts it.
    dirish: bool,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    inode: u64,
    dev: u64,
    nlink: u64,
    atime: f64,
    mtime: f64,
    ctime: f64,
    user: String,
    group: String,
}

/// The `-printf` format matching [`parse_entry`]: fields, NUL, path, NUL.
const FORMAT: &str = "%y %Y %m %U %G %s %i %D %n %A@ %T@ %C@ %u %g\\0%p\\0";

fn parse_entry(fields: &str, path: &str) -> Option<Entry> {
    let f: Vec<&str> = fields.split(' ').collect();
    if f.len() != 14 {
        return None;
    }
    let named = |name: &str, id: &str| {
        if name == id {
            String::new()
        } else {
            name.to_string()
        }
    };
    Some(Entry {
        path: normpath(path),
        kind: f[0].chars().next()?,
        dirish: f[1] == "d",
        mode: u32::from_str_radix(f[2], 8).ok()?,
        uid: f[3].parse().ok()?,
        gid: f[4].parse().ok()?,
        size: f[5].parse().ok()?,
        inode: f[6].parse().ok()?,
        dev: f[7].parse().ok()?,
        nlink: f[8].parse().ok()?,
        atime: f[9].parse().ok()?,
        mtime: f[10].parse().ok()?,
        ctime: f[11].parse().ok()?,
        user: named(f[12], f[3]),
        group: named(f[13], f[4]),
    })
}

/// Python's `posixpath.normpath`.
fn normpath(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if abs => {}
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Python's `fnmatch.translate`, for Rust's regex: `*`, `?`, `[...]`, `[!...]`.
fn glob_regex(glob: &str) -> String {
    let mut out = String::from("(?s)^");
    let chars: Vec<char> = glob.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str("\\[");
                } else {
                    let inner: String = chars[i..j].iter().collect();
                    let (neg, inner) = match inner.strip_prefix('!') {
                        Some(rest) => ("^", rest.to_string()),
                        None => ("", inner),
                    };
                    let inner = inner.replace('\\', "\\\\").replace('[', "\\[");
                    out.push_str(&format!("[{neg}{inner}]"));
                    i = j + 1;
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

/// The compiled filters of one task.
struct Filters {
    patterns: Vec<Regex>,
    excludes: Vec<Regex>,
    age: Option<i64>,
    size: Option<i64>,
    mode: Option<u32>,
    exact_mode: bool,
    contains: Option<Regex>,
}

/// `N` followed by an optional unit, as Ansible's `age`/`size` take them.
fn with_unit(field: &str, text: &str, units: &[(char, i64)]) -> Result<i64, ModuleError> {
    let t = text.trim().to_ascii_lowercase();
    let (num, mult) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let m = units.iter().find(|(u, _)| *u == c).map(|(_, m)| *m);
            (&t[..t.len() - 1], m)
        }
        _ => (&t[..], Some(1)),
    };
    let n: Option<i64> = num.parse().ok();
    match (n, mult) {
        (Some(n), Some(m)) => Ok(n.saturating_mul(m)),
        _ => Err(ModuleError::failed(format!("failed to process {field}"))),
    }
}

impl Filters {
    fn new(p: &FindParams) -> Result<Filters, ModuleError> {
        let compile =
            |field: &str, re: &str| Regex::new(re).map_err(|e| invalid(field, e.to_string()));
        let names = |field: &str, list: &Option<Vec<String>>| -> Result<Vec<Regex>, ModuleError> {
            list.iter()
                .flatten()
                .map(|s| {
                    if p.use_regex {
                        compile(field, &format!("^(?:{s})"))
                    } else {
                        compile(field, &glob_regex(s))
                    }
                })
                .collect()
        };
        let mut patterns = names("patterns", &p.patterns)?;
        if patterns.is_empty() {
            patterns.push(compile("patterns", "")?);
        }
        let age = p
            .age
            .as_deref()
            .map(|a| {
                with_unit(
                    "age",
                    a,
                    &[
                        ('s', 1),
                        ('m', 60),
                        ('h', 3600),
                        ('d', 86400),
                        ('w', 604_800),
                    ],
                )
            })
            .transpose()?;
        let size = p
            .size
            .as_deref()
            .map(|s| {
                with_unit(
                    "size",
                    s,
                    &[
                        ('b', 1),
                        ('k', 1 << 10),
                        ('m', 1 << 20),
                        ('g', 1 << 30),
                        ('t', 1 << 40),
                    ],
                )
            })
            .transpose()?;
        let mode = match p.mode.as_deref().filter(|m| !m.is_empty()) {
            None => None,
            Some(m) => Some(match u32::from_str_radix(m, 8) {
                Ok(n) => n & 0o7777,
                Err(_) => {
                    apply_symbolic(m, 0, false).map_err(|e| invalid("mode", e.to_string()))?
                        & 0o7777
                }
            }),
        };
        if let Some(e) = p.encoding.as_deref() {
            let e = e.to_ascii_lowercase().replace(['-', '_'], "");
            if e != "utf8" {
                return Err(invalid("encoding", "only utf-8 is supported"));
            }
        }
        let contains = match p.contains.as_deref() {
            None => None,
            Some(c) if p.read_whole_file => Some(compile("contains", c)?),
            Some(c) => Some(compile("contains", &format!("^(?:{c})"))?),
        };
        Ok(Filters {
            patterns,
            excludes: names("excludes", &p.excludes)?,
            age,
            size,
            mode,
            exact_mode: p.exact_mode.unwrap_or(true),
            contains,
        })
    }

    /// Ansible's `pfilter`: a pattern must match; then no exclude may.
    fn name(&self, name: &str) -> bool {
        let b = name.as_bytes();
        self.patterns.iter().any(|r| r.is_match(b)) && !self.excludes.iter().any(|r| r.is_match(b))
    }

    fn age(&self, e: &Entry, stamp: AgeStamp, now: f64) -> bool {
        let t = match stamp {
            AgeStamp::Atime => e.atime,
            AgeStamp::Ctime => e.ctime,
            AgeStamp::Mtime => e.mtime,
        };
        match self.age {
            None => true,
            #[allow(clippy::cast_precision_loss)]
            Some(a) if a >= 0 => now - t >= a as f64,
            #[allow(clippy::cast_precision_loss)]
            Some(a) => now - t <= a.unsigned_abs() as f64,
        }
    }

    fn size(&self, e: &Entry) -> bool {
        match self.size {
            None => true,
            Some(s) if s >= 0 => e.size >= s.unsigned_abs(),
            Some(s) => e.size <= s.unsigned_abs(),
        }
    }

    fn mode(&self, e: &Entry) -> bool {
        match self.mode {
            None => true,
            Some(m) if self.exact_mode => e.mode & 0o7777 == m,
            Some(m) => e.mode & m != 0,
        }
    }

    /// Whether the content matches `contains`: at the start of a line
    /// (the line without its newline, as Python's `$` allows) or anywhere.
    fn content(&self, whole: bool, content: &[u8]) -> bool {
        let Some(re) = &self.contains else {
            return true;
        };
        if std::str::from_utf8(content).is_err() {
            return false;
        }
        if whole {
            return re.is_match(content);
        }
        content
            .split_inclusive(|b| *b == b'\n')
            .any(|l| re.is_match(l.strip_suffix(b"\n").unwrap_or(l)))
    }
}

/// Ansible's `statinfo` of an entry, with its path first.
fn statinfo(e: &Entry) -> Map<String, Value> {
    let m = e.mode;
    let bit = |b: u32| m & b != 0;
    let mut r = Map::new();
    r.insert("path".into(), json!(e.path));
    r.insert("mode".into(), json!(format!("{:04o}", m & 0o7777)));
    for (k, c) in [
        ("isdir", 'd'),
        ("ischr", 'c'),
        ("isblk", 'b'),
        ("isreg", 'f'),
        ("isfifo", 'p'),
        ("islnk", 'l'),
        ("issock", 's'),
    ] {
        r.insert(k.into(), json!(e.kind == c));
    }
    r.insert("uid".into(), json!(e.uid));
    r.insert("gid".into(), json!(e.gid));
    r.insert("size".into(), json!(e.size));
    r.insert("inode".into(), json!(e.inode));
    r.insert("dev".into(), json!(e.dev));
    r.insert("nlink".into(), json!(e.nlink));
    r.insert("atime".into(), json!(e.atime));
    r.insert("mtime".into(), json!(e.mtime));
    r.insert("ctime".into(), json!(e.ctime));
    r.insert("gr_name".into(), json!(e.group));
    r.insert("pw_name".into(), json!(e.user));
    for (k, b) in [
        ("wusr", 0o200),
        ("rusr", 0o400),
        ("xusr", 0o100),
        ("wgrp", 0o020),
        ("rgrp", 0o040),
        ("xgrp", 0o010),
        ("woth", 0o002),
        ("roth", 0o004),
        ("xoth", 0o001),
        ("isuid", 0o4000),
        ("isgid", 0o2000),
    ] {
        r.insert(k.into(), json!(bit(b)));
    }
    r
}

/// What the listing probe found for one of `paths`.
enum Listed {
    /// Not a directory (or missing).
    NotDir,
    /// The path as the host expanded it (`~`), and its entries: the
    /// children of each directory in listing order.
    Dir(String, HashMap<String, Vec<Entry>>),
}

/// The probe: for each path, `D<i>` and its entries, or `N<i>`.
fn listing_script(p: &FindParams) -> String {
    let maxdepth = match (p.recurse, p.depth.filter(|d| *d > 0)) {
        (false, _) => " -maxdepth 1".to_string(),
        (true, Some(d)) => format!(" -maxdepth {}", d + 1),
        (true, None) => String::new(),
    };
    let follow = if p.follow { " -L" } else { "" };
    let mut s = String::from("export LC_ALL=C\n");
    for (i, path) in p.paths.iter().enumerate() {
        s.push_str(&format!(
            "p={}\nif [ -d \"$p\" ]; then printf 'D{i}\\0%s\\0' \"$p\"; find{follow} \"$p\" -mindepth 1{maxdepth} -printf '{FORMAT}'; else printf 'N{i}\\0'; fi\n",
            quote_path(path)
        ));
    }
    s.push_str("exit 0\n");
    s
}

fn parse_listing(out: &[u8], n: usize) -> Result<Vec<Listed>, ModuleError> {
    let text = String::from_utf8_lossy(out);
    let mut recs = text.split('\0').peekable();
    let mut listed: Vec<Listed> = Vec::with_capacity(n);
    while let Some(head) = recs.next() {
        if head.is_empty() && recs.peek().is_none() {
            break;
        }
        if head.starts_with('N') {
            listed.push(Listed::NotDir);
            continue;
        }
        if !head.starts_with('D') {
            return Err(ModuleError::failed(format!(
                "find: unexpected listing output near {head:?}"
            )));
        }
        let root = recs.next().unwrap_or_default().to_string();
        let mut children: HashMap<String, Vec<Entry>> = HashMap::new();
        while let Some(next) = recs.peek() {
            if next.starts_with('D') || next.starts_with('N') || next.is_empty() {
                break;
            }
            let fields = recs.next().unwrap_or_default();
            let path = recs.next().unwrap_or_default();
            let e = parse_entry(fields, path)
                .ok_or_else(|| ModuleError::failed(format!("find: unexpected entry {fields:?}")))?;
            let parent = match e.path.rfind('/') {
                Some(0) => "/".to_string(),
                Some(i) => e.path[..i].to_string(),
                None => ".".to_string(),
            };
            children.entry(parent).or_default().push(e);
        }
        listed.push(Listed::Dir(root, children));
    }
    if listed.len() != n {
        return Err(ModuleError::failed("find: the listing is incomplete"));
    }
    Ok(listed)
}

/// A match before the content check: the entry and how many entries had
/// been examined when it was reached.
struct Candidate {
    entry: Entry,
    examined: usize,
    /// It needs `contains` checked.
    check_content: bool,
    /// It gets a checksum.
    checksum: bool,
}

/// Walk one path's listing in `os.walk` order, applying the filters that
/// need no content. `looked` counts examined entries across paths.
fn walk(
    p: &FindParams,
    f: &Filters,
    now: f64,
    root: &str,
    children: &HashMap<String, Vec<Entry>>,
    looked: &mut usize,
    out: &mut Vec<Candidate>,
) {
    let mut stack: Vec<(String, u64)> = vec![(normpath(root), 1)];
    while let Some((dir, level)) = stack.pop() {
        let Some(list) = children.get(&dir) else {
            continue;
        };
        let (dirs, files): (Vec<&Entry>, Vec<&Entry>) = list.iter().partition(|e| e.dirish);
        *looked += list.len();
        let too_deep = p.depth.is_some_and(|d| d > 0 && level > d);
        if too_deep {
            continue;
        }
        for e in files.iter().chain(dirs.iter()) {
            let name = e.path.rsplit('/').next().unwrap_or(&e.path);
            if name.starts_with('.') && !p.hidden {
                continue;
            }
            if !(f.name(name) && f.age(e, p.age_stamp, now) && f.mode(e)) {
                continue;
            }
            let (take, check_content, checksum) = match (p.file_type, e.kind) {
                (FileType::Any, 'f') => (f.size(e), false, p.get_checksum),
                (FileType::Any, _) => (true, false, false),
                (FileType::Directory, 'd') | (FileType::Link, 'l') => (true, false, false),
                (FileType::File, 'f') => (f.size(e), f.contains.is_some(), p.get_checksum),
                _ => (false, false, false),
            };
            if take {
                out.push(Candidate {
                    entry: (*e).clone(),
                    examined: *looked,
                    check_content,
                    checksum,
                });
            }
        }
        if p.recurse {
            // Depth first, in listing order: push in reverse. Without
            // `follow` os.walk does not enter a link to a directory.
            for d in dirs.iter().rev() {
                if e_is_walked(d, p.follow) {
                    stack.push((d.path.clone(), level + 1));
                }
            }
        }
    }
}

fn e_is_walked(e: &Entry, follow: bool) -> bool {
    e.kind == 'd' || (follow && e.dirish)
}

/// What the second round trip read, by candidate index: contents and sha1s.
type Read = (HashMap<usize, Vec<u8>>, HashMap<usize, String>);

/// The second round trip: content (base64) of files `contains` reads and
/// sha1 of files that get a checksum, tagged by candidate index.
fn read_candidates(host: &mut dyn Host, cands: &[Candidate]) -> Result<Read, ModuleError> {
    use base64::Engine as _;
    let mut s = String::new();
    for (i, c) in cands.iter().enumerate() {
        let q = quote_path(&c.entry.path);
        if c.check_content {
            s.push_str(&format!(
                "if [ -r {q} ]; then printf 'C{i} '; base64 -w0 < {q}; echo; fi\n"
            ));
        }
        if c.checksum {
            s.push_str(&format!(
                "if [ -r {q} ]; then s=$(sha1sum < {q}) && echo \"S{i} ${{s%% *}}\"; fi\n"
            ));
        }
    }
    let (mut contents, mut sums) = (HashMap::new(), HashMap::new());
    if s.is_empty() {
        return Ok((contents, sums));
    }
    s.push_str("exit 0\n");
    let out = host.run(&s, None)?;
    for line in out.stdout_str().lines() {
        let Some((tag, rest)) = line.split_once(' ') else {
            continue;
        };
        if let Some(i) = tag.strip_prefix('C').and_then(|i| i.parse::<usize>().ok()) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .map_err(|_| ModuleError::failed("find: cannot decode a file's content"))?;
            contents.insert(i, bytes);
        } else if let Some(i) = tag.strip_prefix('S').and_then(|i| i.parse::<usize>().ok()) {
            sums.insert(i, rest.trim().to_string());
        }
    }
    Ok((contents, sums))
}

/// `find: 'PATH': MESSAGE` lines of find's stderr, as `skipped_paths`.
fn walk_errors(stderr: &str, skipped: &mut BTreeMap<String, String>) {
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix("find: '") else {
            continue;
        };
        if let Some((path, msg)) = rest.split_once("': ") {
            skipped.insert(path.to_string(), msg.to_string());
        }
    }
}

impl Find {
    fn result(p: &FindParams, host: &mut dyn Host) -> Result<Map<String, Value>, ModuleError> {
        let filters = Filters::new(p)?;
        if p.limit == Some(0) {
            return Err(ModuleError::failed(
                "limit cannot be 0 (use None for unlimited)",
            ));
        }
        let out = host.run(&listing_script(p), None)?;
        if !out.success() {
            return Err(ModuleError::failed(format!(
                "listing the paths failed (rc={}): {}",
                out.rc,
                out.stderr_str().trim_end()
            )));
        }
        let listed = parse_listing(&out.stdout, p.paths.len())?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut skipped = BTreeMap::new();
        walk_errors(&out.stderr_str(), &mut skipped);
        let mut warnings = Vec::new();
        let mut looked = 0usize;
        let mut cands = Vec::new();
        for (path, l) in p.paths.iter().zip(&listed) {
            match l {
                Listed::NotDir => {
                    let why = format!("'{path}' is not a directory");
                    warnings.push(format!(
                        "Skipped '{path}' path due to this access issue: {why}\n"
                    ));
                    skipped.insert(path.clone(), why);
                }
                Listed::Dir(root, children) => {
                    walk(p, &filters, now, root, children, &mut looked, &mut cands);
                }
            }
        }
        let (contents, sums) = read_candidates(host, &cands)?;
        let mut files = Vec::new();
        let mut msg = "All paths examined";
        let limit = p.limit.and_then(|l| usize::try_from(l).ok());
        for (i, c) in cands.iter().enumerate() {
            if c.check_content {
                let content = contents.get(&i).map_or(&[][..], Vec::as_slice);
                if !contents.contains_key(&i) || !filters.content(p.read_whole_file, content) {
                    continue;
                }
            }
            let mut r = statinfo(&c.entry);
            if c.checksum {
                if let Some(s) = sums.get(&i) {
                    r.insert("checksum".into(), json!(s));
                }
            }
            files.push(Value::Object(r));
            if Some(files.len()) == limit {
                msg = "Limit of matches reached";
                looked = c.examined;
                break;
            }
        }
        if !warnings.is_empty() {
            msg = "Not all paths examined, check warnings for details";
        }
        let mut result = Map::new();
        result.insert("matched".into(), json!(files.len()));
        result.insert("files".into(), Value::Array(files));
        result.insert("examined".into(), json!(looked));
        result.insert("msg".into(), json!(msg));
        result.insert("skipped_paths".into(), json!(skipped));
        if !warnings.is_empty() {
            result.insert("warnings".into(), json!(warnings));
        }
        Ok(result)
    }
}

impl Module for Find {
    const NAME: &'static str = "find";
    const DOC_SHORT: &'static str =
        "List files under directories by name, age, size, type, mode or content.";
    const DOC_LONG: &'static str = r##"Never changes the host (it reports ok, in check mode too). The entries of every path are listed in one round trip with GNU `find` and filtered here; `contains` and `get_checksum` read the candidate files in a second one. `files` lists the matches in the order Ansible walks the tree (a directory's files, then its directories, then each directory's entries), each with Ansible's stat fields (`path`, `mode`, `size`, `mtime`, `isdir`, `pw_name`, ...)."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Old logs
  find:
    paths: /var/log/app
    patterns: "*.log,*.gz"
    age: 2w
    recurse: true
  register: old_logs
- name: Remove them
  file:
    path: "{{ item.path }}"
    state: absent
  loop: "{{ old_logs.files }}"
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("files", "the matches, each with Ansible's stat fields (`path`, `mode`, `size`, `mtime`, `isdir`, `checksum` with `get_checksum`, ...)"),
        ("matched", "how many matched"),
        ("examined", "how many entries were looked at"),
        ("msg", "`All paths examined`, `Limit of matches reached`, or `Not all paths examined, check warnings for details`"),
        ("skipped_paths", "paths that could not be read, with why"),
    ];
    type Params = FindParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        Ok(Plan {
            result: Self::result(p, host)?,
            ..Plan::default()
        })
    }

    fn apply(
        &self,
        _p: &Self::Params,
        plan: Plan,
        _host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        Ok(Outcome::read_in_plan(plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, host, path_in, plan, FakeHost};
    use crate::DynModule;

    /// The paths of a find result, relative to `base`.
    fn names(result: &Map<String, Value>, base: &str) -> Vec<String> {
        get(result, "files")
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["path"].as_str())
                    .map(|p| p.strip_prefix(base).unwrap_or(p).to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn tree() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = path_in(&dir, "t");
        for (p, text) in [
            ("t/a.log", "error: disk\n"),
            ("t/b.txt", "fine\n"),
            ("t/.hidden.log", "x"),
            ("t/sub/c.log", "warn\nerror: net\n"),
            ("t/sub/deeper/d.log", ""),
            ("t/.dot/e.log", "x"),
        ] {
            let f = path_in(&dir, p);
            if let Some(parent) = std::path::Path::new(&f).parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(&f, text).expect("write");
        }
        (dir, base)
    }

    #[test]
    fn patterns_recurse_depth_and_hidden() {
        let (_d, base) = tree();
        let r = plan(&Find, &json!({"paths": base, "patterns": "*.log"})).result;
        assert_eq!(names(&r, &base), ["/a.log"]);
        assert_eq!(get(&r, "matched"), 1);
        assert_eq!(get(&r, "msg"), "All paths examined");
        // b.txt, a.log, .hidden.log, sub, .dot
        assert_eq!(get(&r, "examined"), 5);
        let pl = plan(
            &Find,
            &json!({"paths": [base.clone()], "pattern": ["*.log"], "recurse": true}),
        );
        assert!(pl.is_empty(), "find never changes anything");
        let mut got = names(&pl.result, &base);
        got.sort();
        assert_eq!(
            got,
            ["/.dot/e.log", "/a.log", "/sub/c.log", "/sub/deeper/d.log"]
        );
        let r = plan(
            &Find,
            &json!({"paths": base, "patterns": "*.log", "recurse": true, "depth": 2, "hidden": true}),
        )
        .result;
        let mut got = names(&r, &base);
        got.sort();
        assert_eq!(got, ["/.dot/e.log", "/.hidden.log", "/a.log", "/sub/c.log"]);
        let r = plan(
            &Find,
            &json!({"paths": base, "file_type": "directory", "recurse": true}),
        )
        .result;
        let mut got = names(&r, &base);
        got.sort();
        assert_eq!(got, ["/sub", "/sub/deeper"]);
        let r = plan(
            &Find,
            &json!({"paths": base, "use_regex": true, "patterns": [r"^[ab]\."], "excludes": "b.*"}),
        )
        .result;
        assert_eq!(names(&r, &base), ["/a.log"]);
    }

    #[test]
    fn contains_size_age_mode_checksum_and_limit() {
        let (_d, base) = tree();
        let r = plan(
            &Find,
            &json!({"paths": base, "recurse": true, "contains": "error:.*"}),
        )
        .result;
        let mut got = names(&r, &base);
        got.sort();
        assert_eq!(got, ["/a.log", "/sub/c.log"]);
        let r = plan(
            &Find,
            &json!({"paths": base, "recurse": true, "contains": "net$", "read_whole_file": true}),
        )
        .result;
        assert_eq!(
            names(&r, &base),
            Vec::<String>::new(),
            "net is not at the end"
        );
        let r = plan(&Find, &json!({"paths": base, "size": "6", "recurse": true})).result;
        let mut got = names(&r, &base);
        got.sort();
        assert_eq!(got, ["/a.log", "/sub/c.log"]);
        let r = plan(&Find, &json!({"paths": base, "age": "1d"})).result;
        assert_eq!(get(&r, "matched"), 0, "nothing is a day old");
        let r = plan(
            &Find,
            &json!({"paths": base, "age": "-1d", "patterns": "a*"}),
        )
        .result;
        assert_eq!(get(&r, "matched"), 1);
        let a = format!("{base}/a.log");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let r = plan(&Find, &json!({"paths": base, "mode": "0600"})).result;
        assert_eq!(names(&r, &base), ["/a.log"]);
        let r = plan(
            &Find,
            &json!({"paths": base, "mode": "u=rw", "exact_mode": false}),
        )
        .result;
        assert_eq!(get(&r, "matched"), 2);
        let r = plan(
            &Find,
            &json!({"paths": base, "patterns": "a.log", "get_checksum": true}),
        )
        .result;
        let f = &get(&r, "files")[0];
        assert_eq!(f["checksum"], crate::textfile::sha1_hex(b"error: disk\n"));
        assert_eq!(f["mode"], "0600");
        assert_eq!(f["isreg"], true);
        assert_eq!(f["size"], 12);
        let r = plan(&Find, &json!({"paths": base, "recurse": true, "limit": 1})).result;
        assert_eq!(get(&r, "matched"), 1);
        assert_eq!(get(&r, "msg"), "Limit of matches reached");
    }

    #[test]
    fn missing_paths_are_skipped_and_bad_values_refused() {
        let (_d, base) = tree();
        let none = format!("{base}/none");
        let r = plan(
            &Find,
            &json!({"paths": [none.clone(), base.clone()], "patterns": "a.log"}),
        )
        .result;
        assert_eq!(get(&r, "matched"), 1);
        assert_eq!(
            get(&r, "msg"),
            "Not all paths examined, check warnings for details"
        );
        assert_eq!(
            get(&r, "skipped_paths")[&none],
            format!("'{none}' is not a directory")
        );
        for (params, field) in [
            (json!({"paths": base, "file_type": "socket"}), "file_type"),
            (
                json!({"paths": base, "use_regex": true, "patterns": "("}),
                "patterns",
            ),
            (json!({"paths": base, "encoding": "latin-1"}), "encoding"),
            (json!({"paths": base, "mode": 420}), "mode"),
        ] {
            let err = DynModule::plan(&Find, &params, &mut host()).expect_err("refused");
            assert!(
                matches!(err, ModuleError::Params(ref e) if e.field() == Some(field)),
                "{field}: {err:?}"
            );
        }
        let err = DynModule::plan(&Find, &json!({"paths": base, "age": "2y"}), &mut host())
            .expect_err("age");
        assert_eq!(err.to_string(), "failed to process age");
        let unknown = Find.check_params(&json!({"paths": "/x", "get_mime": true}));
        assert!(
            matches!(unknown, Err(ParamError::Unknown { ref field, .. }) if field == "get_mime")
        );
    }

    /// On a fake host: one round trip without content filters, and the
    /// order of `os.walk` (files before directories, then each directory).
    #[test]
    fn one_round_trip_in_walk_order() {
        let row =
            |y: &str, p: &str| format!("{y} {y} 644 0 0 3 1 2 1 1.5 1.5 1.5 root root\0{p}\0");
        let listing = format!(
            "D0\0/srv\0{}{}{}{}",
            row("d", "/srv/sub"),
            row("f", "/srv/sub/x"),
            row("f", "/srv/a"),
            row("f", "/srv/b")
        );
        let mut h = FakeHost::new().answer(crate::testing::Match::contains("find"), 0, listing, "");
        let params = json!({"paths": "/srv", "recurse": true, "file_type": "any"});
        let pl = DynModule::plan(&Find, &params, &mut h).expect("plan");
        assert_eq!(h.scripts.len(), 1);
        assert_eq!(
            names(&pl.result, ""),
            ["/srv/a", "/srv/b", "/srv/sub", "/srv/sub/x"]
        );
        assert_eq!(get(&pl.result, "examined"), 4);
        let f = &get(&pl.result, "files")[2];
        assert_eq!(f["isdir"], true);
        assert_eq!(f["pw_name"], "root");
    }

    #[test]
    fn globs_and_paths_as_python_has_them() {
        let m =
            |g: &str, n: &str| Regex::new(&glob_regex(g)).is_ok_and(|r| r.is_match(n.as_bytes()));
        assert!(m("*.log", "a.log") && !m("*.log", "a.log.1"));
        assert!(m("[!a]?", "bc") && !m("[!a]?", "ac") && m("[ab]*", "bz"));
        assert!(m("a[", "a[") && m("a.b", "a.b") && !m("a.b", "axb"));
        assert_eq!(normpath("/srv//a/./b/../c/"), "/srv/a/c");
        assert_eq!(normpath("a/.."), ".");
        assert_eq!(normpath("../x"), "../x");
    }
}
