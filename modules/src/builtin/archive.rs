//! `archive`: community.general's `archive`: pack files and trees into a
//! tar (plain, gz, bz2, xz) or zip archive, or compress one file.
//!
//! The plan expands `path` and `exclude_path` on the host (`*` and `?`
//! with the shell's globbing, which like Python's `glob` skips dot files),
//! walks the directories with `find`, and decides what the collection
//! decides: several paths, a glob, a directory or `force_archive` make an
//! archive of every entry under the common root (a directory itself is not
//! a member, its content is), else the one file is compressed (or put in a
//! one-member tar/zip). Whether the archive changed is decided as the
//! collection decides, by comparing the content signature of `dest` before
//! and after the rewrite: for a tar, each member's header (`tar --full-time
//! -tv`: mode, owner, size, mtime in seconds, name; content is not read,
//! as the collection compares tar header checksums); for a zip, each
//! member's name and CRC-32 (`unzip -v`, so zip archives need `unzip` on
//! the host); for one compressed file, the decompressed content (compared
//! in the plan, on a candidate built in a temp directory).
//!
//! Apply builds the archive with the host's `tar` (and `gzip`/`bzip2`/
//! `xz`) or `zip` next to `dest` and renames it into place, keeping an
//! existing `dest`'s mode and owner, then removes the sources (`remove`)
//! and sets `owner`/`group`/`mode`. Archives are not byte-identical to the
//! collection's (Python's tarfile and zipfile write them there).
//!
//! An archive of several paths (or a directory, a glob, `force_archive`)
//! is rewritten on every run, as the collection does, so its plan always
//! has that rewrite and check mode reports it as a change, as the
//! collection's check mode does; the run reports a change only when the
//! members differ. One compressed file is compared before anything is
//! written. A symlink to a directory given in `path` is archived as a link,
//! not walked.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::account::de_opt_list;
use crate::params::{de_bool, de_opt_bool, de_opt_mode, de_opt_string, Mode};
use crate::probe::{file_result, parse_stat, stat_snippet, WantedAttrs};
use crate::shell_quote::quote;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

/// `format`'s values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// gzip (a `.tar.gz` for an archive).
    #[default]
    Gz,
    /// bzip2.
    Bz2,
    /// xz.
    Xz,
    /// An uncompressed tar.
    Tar,
    /// A zip archive.
    Zip,
}

impl Format {
    fn word(self) -> &'static str {
        match self {
            Format::Gz => "gz",
            Format::Bz2 => "bz2",
            Format::Xz => "xz",
            Format::Tar => "tar",
            Format::Zip => "zip",
        }
    }

    /// The compressor's name, for the compressed formats.
    fn compressor(self) -> Option<&'static str> {
        match self {
            Format::Gz => Some("gzip"),
            Format::Bz2 => Some("bzip2"),
            Format::Xz => Some("xz"),
            Format::Tar | Format::Zip => None,
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `archive`: what `herd doc` shows, and what the parser takes.
pub struct ArchiveParams {
    /// Paths (or `*`/`?` globs) to archive or compress; a list or a comma-separated string.
    #[serde(deserialize_with = "de_opt_list")]
    pub path: Option<Vec<String>>,
    /// The archive's format.
    #[serde(default)]
    pub format: Format,
    /// The archive file; required when several paths, a glob or a directory are archived.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub dest: Option<String>,
    /// Paths (or globs) left out of the archive.
    #[serde(default, deserialize_with = "de_opt_list")]
    pub exclude_path: Option<Vec<String>>,
    /// Shell patterns matched against each member's name (for a zip, its full path).
    #[serde(default, deserialize_with = "de_opt_list")]
    pub exclusion_patterns: Option<Vec<String>>,
    /// Make an archive even of one file.
    #[serde(default, deserialize_with = "de_bool")]
    pub force_archive: bool,
    /// Remove the sources once archived.
    #[serde(default, deserialize_with = "de_bool")]
    pub remove: bool,
    /// The archive's owner.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub owner: Option<String>,
    /// The archive's group.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub group: Option<String>,
    /// The archive's mode.
    #[serde(default, deserialize_with = "de_opt_mode")]
    pub mode: Option<Mode>,
    /// Accepted and ignored: the archive is always written to a temp file and renamed.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub unsafe_writes: Option<bool>,
    /// Accepted and ignored (chattr attributes are not managed).
    #[serde(alias = "attr")]
    pub attributes: Option<String>,
    /// Accepted and ignored (no SELinux support).
    pub seuser: Option<String>,
    /// Accepted and ignored (no SELinux support).
    pub serole: Option<String>,
    /// Accepted and ignored (no SELinux support).
    pub setype: Option<String>,
    /// Accepted and ignored (no SELinux support).
    pub selevel: Option<String>,
}

/// The `archive` module.
pub struct Archive;

fn invalid(path: &str, reason: &str) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Archive::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// Python's `fnmatch` (case-sensitive, as on POSIX): `*` and `?` match
/// any character including `/`, `[seq]` and `[!seq]` a set.
pub(crate) fn fnmatch(name: &str, pat: &str) -> bool {
    let n: Vec<char> = name.chars().collect();
    let p: Vec<char> = pat.chars().collect();
    fn set_end(p: &[char], i: usize) -> Option<usize> {
        let mut j = i + 1;
        if p.get(j) == Some(&'!') {
            j += 1;
        }
        if p.get(j) == Some(&']') {
            j += 1;
        }
        while j < p.len() && p[j] != ']' {
            j += 1;
        }
        (j < p.len()).then_some(j)
    }
    fn in_set(set: &[char], c: char) -> bool {
        let (neg, set) = match set.first() {
            Some('!') => (true, &set[1..]),
            _ => (false, set),
        };
        let mut hit = false;
        let mut k = 0;
        while k < set.len() {
            if k + 2 < set.len() && set[k + 1] == '-' {
                hit |= set[k] <= c && c <= set[k + 2];
                k += 3;
            } else {
                hit |= set[k] == c;
                k += 1;
            }
        }
        hit != neg
    }
    fn go(n: &[char], p: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&n[k..], &p[1..])),
            Some('?') => !n.is_empty() && go(&n[1..], &p[1..]),
            Some('[') => match set_end(p, 0) {
                Some(end) => {
                    !n.is_empty() && in_set(&p[1..end], n[0]) && go(&n[1..], &p[end + 1..])
                }
                None => n.first() == Some(&'[') && go(&n[1..], &p[1..]),
            },
            Some(c) => n.first() == Some(c) && go(&n[1..], &p[1..]),
        }
    }
    go(&n, &p)
}

/// A shell word for a glob: `*` and `?` stay live, the rest is quoted.
fn glob_word(pat: &str) -> String {
    let mut out = String::new();
    let mut lit = String::new();
    for c in pat.chars() {
        if c == '*' || c == '?' {
            if !lit.is_empty() {
                out.push_str(&quote(&lit));
                lit.clear();
            }
            out.push(c);
        } else {
            lit.push(c);
        }
    }
    if !lit.is_empty() {
        out.push_str(&quote(&lit));
    }
    out
}

fn is_globby(p: &str) -> bool {
    p.contains('*') || p.contains('?')
}

/// The script printing `TAG<TAB>KIND<TAB>PATH` for each expansion of
/// `pats` (KIND `d` directory, `f` anything else, `-` missing).
fn expand_script(tag: &str, pats: &[String]) -> String {
    let mut s = String::new();
    for pat in pats {
        let word = if is_globby(pat) {
            glob_word(pat)
        } else {
            quote(pat)
        };
        let only_existing = if is_globby(pat) { "continue" } else { ":" };
        s.push_str(&format!(
            "for f in {word}; do if [ -d \"$f\" ] && [ ! -L \"$f\" ]; then k=d; \
             elif [ -e \"$f\" ] || [ -L \"$f\" ]; then k=f; else k=-; {only_existing}; fi; \
             printf '{tag}\\t%s\\t%s\\n' \"$k\" \"$f\"; done\n"
        ));
    }
    s
}

/// Python's `os.path.dirname`.
fn dirname(p: &str) -> &str {
    match p.rfind('/') {
        None => "",
        Some(i) => {
            let head = &p[..=i];
            let trimmed = head.trim_end_matches('/');
            if trimmed.is_empty() {
                head
            } else {
                trimmed
            }
        }
    }
}

/// The collection's `common_path`: the directory holding all `paths`
/// (a character-wise common prefix of their parents), with a slash.
fn common_root(paths: &[String]) -> String {
    let parents: Vec<String> = paths
        .iter()
        .map(|p| {
            let d = dirname(p);
            if d.is_empty() || d.ends_with('/') {
                d.to_string()
            } else {
                format!("{d}/")
            }
        })
        .collect();
    let first = parents.first().cloned().unwrap_or_default();
    let mut len = first.len();
    for other in &parents[1..] {
        len = first
            .bytes()
            .zip(other.bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count();
    }
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    let d = dirname(&first[..len]);
    if d.is_empty() || d.ends_with('/') {
        d.to_string()
    } else {
        format!("{d}/")
    }
}

/// What the plan decided, kept for apply.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
struct Decided {
    dest: String,
    must_archive: bool,
    root: String,
    /// (full path, archive name) of each member.
    members: Vec<(String, String)>,
    /// The paths that exist (the collection's targets).
    targets: Vec<String>,
    missing: Vec<String>,
    expanded: Vec<String>,
    expanded_exclude: Vec<String>,
    /// The directories among the paths (removed whole with `remove`).
    dirs: Vec<String>,
    /// The signature of `dest` before (None: no dest).
    before: Option<String>,
}

/// A shell snippet printing the content signature of archive `file` (a
/// quoted word) in `format`, single-file compression or not.
fn signature_script(file: &str, format: Format, must_archive: bool) -> String {
    let crc = |tool: &str| format!("{tool} -dc < {file} 2>/dev/null | cksum");
    match (format, must_archive) {
        (Format::Zip, _) => format!(
            "unzip -v {file} 2>/dev/null | awk 'NR>3 && length($7)==8 && $7 ~ /^[0-9a-f]+$/ {{ n=$8; for (i=9; i<=NF; i++) n=n \" \" $i; print $7, n }}' | LC_ALL=C sort"
        ),
        (Format::Tar, _) => format!("tar --full-time -tvf {file} 2>/dev/null | LC_ALL=C sort"),
        (f, true) => {
            let flag = match f {
                Format::Bz2 => "-j",
                Format::Xz => "-J",
                _ => "-z",
            };
            let tool = f.compressor().unwrap_or("gzip");
            format!(
                "{{ tar --full-time {flag} -tvf {file} 2>/dev/null || {{ printf 'CRC '; {}; }}; }} | LC_ALL=C sort",
                crc(tool)
            )
        }
        (f, false) => {
            let tool = f.compressor().unwrap_or("gzip");
            format!("printf 'CRC '; {}", crc(tool))
        }
    }
}

/// The script that writes the archive of `d` to `$out` (a path in a temp
/// directory `$t`), from the member names given on stdin.
fn build_script(d: &Decided, format: Format) -> String {
    let root = quote(if d.root.is_empty() { "." } else { &d.root });
    match (format, d.must_archive) {
        (Format::Zip, _) => {
            format!("out=\"$t/a.zip\"; (cd {root} && zip -q -@ \"$out\") >/dev/null || exit 3\n")
        }
        (Format::Tar, _) | (_, true) => {
            let flag = match format {
                Format::Gz => "-z",
                Format::Bz2 => "-j",
                Format::Xz => "-J",
                _ => "",
            };
            format!(
                "out=\"$t/a\"; tar -C {root} -c {flag} -f \"$out\" --no-recursion --null --verbatim-files-from -T - || exit 3\n"
            )
        }
        (f, false) => {
            let tool = f.compressor().unwrap_or("gzip");
            let src = d.targets.first().map(String::as_str).unwrap_or_default();
            format!(
                "out=\"$t/a\"; {tool} -c < {} > \"$out\" || exit 3\n",
                quote(src)
            )
        }
    }
}

/// The member names as the archiver reads them on stdin.
fn member_input(d: &Decided, format: Format) -> Vec<u8> {
    let sep = if format == Format::Zip { b'\n' } else { 0 };
    let mut v = Vec::new();
    for (_, name) in &d.members {
        v.extend_from_slice(name.as_bytes());
        v.push(sep);
    }
    v
}

impl Archive {
    fn want(p: &ArchiveParams) -> WantedAttrs {
        WantedAttrs::ignoring_preserve(&p.owner, &p.group, &p.mode)
    }

    fn decide(p: &ArchiveParams, host: &mut dyn Host) -> Result<Decided, ModuleError> {
        let paths = p.path.clone().unwrap_or_default();
        if paths.is_empty() {
            return Err(ModuleError::Params(ParamError::Missing {
                module: Self::NAME,
                field: "path".into(),
            }));
        }
        let excludes = p.exclude_path.clone().unwrap_or_default();
        let mut script = String::from("export LC_ALL=C\n");
        script.push_str(&expand_script("P", &paths));
        script.push_str(&expand_script("X", &excludes));
        let out = host.run(&script, None)?.stdout_str();
        let mut expanded = Vec::new();
        let mut kinds = std::collections::HashMap::new();
        let mut expanded_exclude = Vec::new();
        for line in out.lines() {
            let mut it = line.splitn(3, '\t');
            let (Some(tag), Some(kind), Some(path)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            match tag {
                "P" => {
                    expanded.push(path.to_string());
                    kinds.insert(path.to_string(), kind.to_string());
                }
                "X" => expanded_exclude.push(path.to_string()),
                _ => {}
            }
        }
        let globby = paths.iter().any(|p| is_globby(p));
        let mut sources: Vec<String> = expanded
            .iter()
            .filter(|p| !expanded_exclude.contains(p))
            .cloned()
            .collect();
        sources.sort();
        sources.dedup();
        if sources.is_empty() {
            let mut result = Map::new();
            result.insert("path".into(), json!(paths.join(", ")));
            result.insert("expanded_paths".into(), json!(expanded.join(", ")));
            result.insert(
                "expanded_exclude_paths".into(),
                json!(expanded_exclude.join(", ")),
            );
            return Err(ModuleError::Failed {
                msg: "Error, no source paths were found".into(),
                result,
            });
        }
        let root = common_root(&sources);
        let kind = |p: &str| kinds.get(p).map(String::as_str).unwrap_or("-");
        let must_archive =
            p.force_archive || globby || kind(&sources[0]) == "d" || sources.len() > 1;
        let dest = match &p.dest {
            Some(d) => d.clone(),
            None if !must_archive => format!("{}.{}", sources[0], p.format.word()),
            None => {
                return Err(ModuleError::failed(
                    "Error, must specify \"dest\" when archiving multiple files or trees",
                ))
            }
        };
        let dirs: Vec<String> = sources.iter().filter(|s| kind(s) == "d").cloned().collect();
        if p.remove {
            for d in &dirs {
                if dest.starts_with(&format!("{}/", d.trim_end_matches('/'))) {
                    return Err(ModuleError::failed(
                        "Error, created archive can not be contained in source paths when remove=true",
                    ));
                }
            }
        }
        let (targets, missing): (Vec<String>, Vec<String>) =
            sources.iter().cloned().partition(|s| kind(s) != "-");
        // Walk the directories among the targets.
        let mut walk = String::from("export LC_ALL=C\n");
        for d in &dirs {
            walk.push_str(&format!(
                "find {} -mindepth 1 -print0 2>/dev/null\n",
                quote(d)
            ));
        }
        let walked = if dirs.is_empty() {
            String::new()
        } else {
            host.run(&walk, None)?.stdout_str()
        };
        let mut under: std::collections::HashMap<&str, Vec<String>> = Default::default();
        let mut entries = walked.split('\0').filter(|e| !e.is_empty());
        // `find` prints each directory's entries after the directory's own
        // path prefix, so an entry belongs to the first walked directory it
        // starts with.
        for e in entries.by_ref() {
            if let Some(d) = dirs
                .iter()
                .find(|d| e.starts_with(&format!("{}/", d.trim_end_matches('/'))))
            {
                under.entry(d.as_str()).or_default().push(e.to_string());
            }
        }
        let patterns = p.exclusion_patterns.clone().unwrap_or_default();
        let mut members = Vec::new();
        let mut add = |full: &str| {
            let name = full.strip_prefix(root.as_str()).unwrap_or(full);
            let arcname = name.trim_start_matches('/').to_string();
            let matched = if p.format == Format::Zip {
                full
            } else {
                arcname.as_str()
            };
            if !patterns.iter().any(|pat| fnmatch(matched, pat)) {
                members.push((full.to_string(), arcname));
            }
        };
        for t in &targets {
            if kind(t) == "d" && must_archive {
                for e in under.get(t.as_str()).into_iter().flatten() {
                    add(e);
                }
            } else {
                add(t);
            }
        }
        Ok(Decided {
            dest,
            must_archive,
            root,
            members,
            targets,
            missing,
            expanded,
            expanded_exclude,
            dirs,
            before: None,
        })
    }

    fn result(d: &Decided, archived: &[String], state: &str) -> Map<String, Value> {
        let mut r = Map::new();
        r.insert("archived".into(), json!(archived));
        r.insert("dest".into(), json!(d.dest));
        r.insert("dest_state".into(), json!(state));
        r.insert("arcroot".into(), json!(d.root));
        r.insert("missing".into(), json!(d.missing));
        r.insert("expanded_paths".into(), json!(d.expanded));
        r.insert("expanded_exclude_paths".into(), json!(d.expanded_exclude));
        r
    }
}

/// The collection's `is_archive`: by the file name.
fn named_like_archive(dest: &str) -> bool {
    let base = dest.rsplit('/').next().unwrap_or(dest).to_ascii_lowercase();
    [
        ".tar", ".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".zip",
    ]
    .iter()
    .any(|s| base.ends_with(s))
}

impl Module for Archive {
    const NAME: &'static str = "archive";
    const DOC_SHORT: &'static str =
        "Pack files and trees into a tar or zip archive, or compress one file.";
    const DOC_LONG: &'static str = r##"community.general's `archive`. Uses the host's `tar`, `gzip`, `bzip2`, `xz`,
`zip` and (to compare zip archives) `unzip`.

Several paths, a glob, a directory or `force_archive` make an archive of everything under the
paths' common directory; one file is compressed to `dest` (default `PATH.FORMAT`). The task
reports a change when the archive's members (tar: their headers; zip: names and CRCs; one
compressed file: its content) differ from the existing `dest`'s."##;
    const DOC_EXAMPLE: &'static str = r##"- archive:
    path: /var/log/app
    dest: /backup/app-logs.tar.xz
    format: xz
    exclusion_patterns: ["*.tmp"]
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("archived", "The paths put in the archive."),
        (
            "dest_state",
            "`absent`, `archive`, `compress` or `incomplete`.",
        ),
        (
            "arcroot",
            "The common directory the member names are relative to.",
        ),
        ("missing", "Paths that were not found."),
        ("expanded_paths", "The paths after glob expansion."),
        (
            "expanded_exclude_paths",
            "The excluded paths after glob expansion.",
        ),
    ];
    type Params = ArchiveParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        if p.path.as_ref().is_none_or(Vec::is_empty) {
            return Err(invalid("path", "at least one path is required"));
        }
        let mut d = Self::decide(p, host)?;
        let dq = quote(&d.dest);
        let want = Self::want(p);
        let mut script = format!("export LC_ALL=C\n{}", stat_snippet("DEST", &dq, true));
        let builds = !d.targets.is_empty();
        // An archive of several paths is rewritten on every run, and
        // whether that changed it is only known afterwards (as in the
        // collection, whose check mode reports it as a change); one
        // compressed file is compared first.
        let always = builds && d.must_archive;
        script.push_str(&format!(
            "if [ -e {dq} ]; then echo OLD; {}; fi\necho END\n",
            signature_script(&dq, p.format, d.must_archive)
        ));
        if builds && !always {
            script.push_str(&format!(
                "t=$(mktemp -d) || exit 2\ntrap 'rm -rf \"$t\"' EXIT\n{}echo NEW\n{}\n",
                build_script(&d, p.format),
                signature_script("\"$out\"", p.format, d.must_archive)
            ));
        }
        let input = member_input(&d, p.format);
        let out = host.run(&script, (builds && !always).then_some(input.as_slice()))?;
        if out.rc == 3 {
            return Err(ModuleError::failed(format!(
                "Error when writing {} archive at {}: {}",
                p.format.word(),
                d.dest,
                out.stderr_str().trim_end()
            )));
        }
        let text = out.stdout_str();
        let st = parse_stat(&text, "DEST").map_err(|e| ModuleError::failed(e.to_string()))?;
        let section = |start: &str, end: &str| -> Option<String> {
            let i = text.find(&format!("{start}\n"))? + start.len() + 1;
            let rest = &text[i..];
            let j = if end.is_empty() {
                rest.len()
            } else {
                rest.find(&format!("{end}\n")).unwrap_or(rest.len())
            };
            Some(rest[..j].to_string())
        };
        d.before = section("OLD", "END");
        let after = section("NEW", "");
        let mut plan = Plan::default();
        let state = if d.targets.is_empty() {
            match &st {
                Some(_) if named_like_archive(&d.dest) => "archive",
                Some(_) => "compress",
                None => "absent",
            }
        } else {
            "absent"
        };
        // A run of the collection rewrites one compressed file too, so an
        // unchanged one still reports it archived (its check mode reports
        // `absent` and nothing archived: the plan cannot tell the two).
        let (archived, state): (Vec<String>, &str) = if builds && !always {
            let members = d.members.iter().map(|(full, _)| full.clone()).collect();
            match p.format {
                Format::Zip | Format::Tar => (members, "archive"),
                _ => (members, "compress"),
            }
        } else {
            (Vec::new(), state)
        };
        // Ansible adds the facts of `dest` to every result.
        plan.result = file_result("dest", &d.dest, st.as_ref());
        plan.result.extend(Self::result(&d, &archived, state));
        if builds {
            let differs = match (&d.before, &after) {
                (None, _) => true,
                (Some(b), Some(a)) => b != a,
                (Some(_), None) => true,
            };
            if always {
                plan.changes.push(format!(
                    "rewrite {} with {} member(s) (a change if its members differ)",
                    d.dest,
                    d.members.len()
                ));
            } else if differs {
                let what = if d.must_archive {
                    "archive"
                } else {
                    "compress"
                };
                plan.changes.push(format!(
                    "{what} {} member(s) into {}",
                    d.members.len(),
                    d.dest
                ));
            }
            if p.remove {
                plan.changes
                    .push(format!("remove {} source path(s)", d.targets.len()));
            }
        }
        match &st {
            Some(st) => plan.changes.extend(want.diff(&d.dest, st).0),
            None if builds
                && (want.owner.is_some() || want.group.is_some() || want.mode.is_some()) =>
            {
                plan.changes.push(format!("set attributes of {}", d.dest));
            }
            None => {}
        }
        plan.keep_state(&d)?;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let d: Decided = plan.state_as()?;
        let dq = quote(&d.dest);
        let mut changed = false;
        let mut archived: Vec<String> = Vec::new();
        let mut dest_state = plan
            .result
            .get("dest_state")
            .and_then(Value::as_str)
            .unwrap_or("absent")
            .to_string();
        if !d.targets.is_empty() {
            let parent = dirname(&d.dest);
            let parent = if parent.is_empty() { "." } else { parent };
            let script = format!(
                "export LC_ALL=C\nt=$(mktemp -d {}) || exit 2\ntrap 'rm -rf \"$t\"' EXIT\n{}\
                 if [ -e {dq} ]; then chmod --reference={dq} \"$out\"; chown --reference={dq} \"$out\" 2>/dev/null; \
                 else m=$(umask); chmod \"$(printf %o $(( 0666 & ~m )))\" \"$out\"; fi\n\
                 mv -f \"$out\" {dq} || exit 4\necho NEW\n{}\n",
                quote(&format!("{}/.herd-archive.XXXXXX", parent.trim_end_matches('/'))),
                build_script(&d, p.format),
                signature_script(&dq, p.format, d.must_archive),
            );
            let input = member_input(&d, p.format);
            let out = host.run(&script, Some(&input))?;
            if !out.success() {
                let msg = if d.must_archive {
                    let f = match p.format {
                        Format::Zip | Format::Tar => p.format.word().to_string(),
                        f => format!("tar.{}", f.word()),
                    };
                    format!("Error when writing {f} archive at {}", d.dest)
                } else {
                    "Unable to write to compressed file".to_string()
                };
                return Err(ModuleError::failed(format!(
                    "{msg}: {}",
                    out.stderr_str().trim_end()
                )));
            }
            let text = out.stdout_str();
            let after = text.split_once("NEW\n").map(|(_, a)| a.to_string());
            changed = match (&d.before, &after) {
                (None, _) => true,
                (Some(b), Some(a)) => b != a,
                (Some(_), None) => true,
            };
            archived = d.members.iter().map(|(full, _)| full.clone()).collect();
            dest_state = match (d.must_archive, p.format) {
                (true, _) if !d.missing.is_empty() => "incomplete",
                (true, _) | (false, Format::Zip | Format::Tar) => "archive",
                (false, _) => "compress",
            }
            .into();
            if p.remove {
                let mut rm = String::new();
                for full in archived.iter().chain(d.dirs.iter()) {
                    rm.push_str(&format!("rm -rf -- {}\n", quote(full)));
                }
                if !d.must_archive {
                    if let Some(t) = d.targets.first() {
                        rm = format!("rm -f -- {}\n", quote(t));
                    }
                }
                let out = host.run(&rm, None)?;
                if !out.success() {
                    return Err(ModuleError::failed(format!(
                        "Error deleting some source files: {}",
                        out.stderr_str().trim_end()
                    )));
                }
            }
        }
        let want = Self::want(p);
        let stat_out = host
            .run(&stat_snippet("DEST", &dq, true), None)?
            .stdout_str();
        let mut st =
            parse_stat(&stat_out, "DEST").map_err(|e| ModuleError::failed(e.to_string()))?;
        if let Some(cur) = &st {
            let (changes, mode) = want.diff(&d.dest, cur);
            if !changes.is_empty() {
                let out = host.run(&want.apply_script(&dq, mode, false), None)?;
                if !out.success() {
                    return Err(ModuleError::failed(out.stderr_str().trim_end().to_string()));
                }
                changed = true;
                let again = host
                    .run(&stat_snippet("DEST", &dq, true), None)?
                    .stdout_str();
                st = parse_stat(&again, "DEST").map_err(|e| ModuleError::failed(e.to_string()))?;
            }
        }
        let mut result = file_result("dest", &d.dest, st.as_ref());
        result.extend(Self::result(&d, &archived, &dest_state));
        result.insert("changed".into(), Value::Bool(changed));
        Ok(Outcome::changed_if(changed, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, get, path_in};
    use crate::DynModule;

    fn have(tool: &str) -> bool {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("src/sub")).expect("mkdir");
        std::fs::write(dir.path().join("src/a.txt"), "alpha\n").expect("write");
        std::fs::write(dir.path().join("src/b.tmp"), "tmp\n").expect("write");
        std::fs::write(dir.path().join("src/sub/c.txt"), "gamma\n").expect("write");
        dir
    }

    #[test]
    fn fnmatch_is_pythons() {
        assert!(fnmatch("src/sub/x.tmp", "*.tmp"));
        assert!(fnmatch("a", "?"));
        assert!(fnmatch("b1", "[a-c][0-9]"));
        assert!(!fnmatch("d1", "[!d]1"));
        assert!(!fnmatch("x.txt", "*.tmp"));
    }

    #[test]
    fn common_root_is_the_collections() {
        assert_eq!(common_root(&["/root/src".into()]), "/root/");
        assert_eq!(common_root(&["/a/b/x".into(), "/a/bc/y".into()]), "/a/");
        assert_eq!(common_root(&["/a/b/x".into(), "/a/b/y".into()]), "/a/b/");
    }

    /// An archive of several paths: plan, apply, and a second run that
    /// rewrites it and reports no change (the plan always has the
    /// rewrite, as the collection's check mode reports it).
    fn rewrite_twice(params: &Value) -> (Plan, Outcome) {
        let first = testing::plan(&Archive, params);
        assert!(!first.is_empty());
        let out = testing::apply(&Archive, params, first.clone());
        let again = testing::plan(&Archive, params);
        assert_eq!(again.changes.len(), 1, "{:?}", again.changes);
        let second = testing::apply(&Archive, params, again);
        assert!(
            !second.changed,
            "a rewrite of the same members is no change"
        );
        (first, out)
    }

    #[test]
    fn a_tree_is_archived_once_with_exclusions() {
        if !have("tar") || !have("gzip") {
            return;
        }
        let dir = tree();
        let params = json!({"path": path_in(&dir, "src"), "dest": path_in(&dir, "out.tgz"),
                            "exclusion_patterns": ["*.tmp"], "mode": "0600"});
        let (plan, out) = rewrite_twice(&params);
        assert!(
            plan.changes[0].contains("3 member(s)"),
            "{:?}",
            plan.changes
        );
        assert!(out.changed);
        assert_eq!(get(&out.result, "dest_state"), "archive");
        assert_eq!(get(&out.result, "mode"), "0600");
        let mut archived: Vec<String> = out.result["archived"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        archived.sort();
        assert_eq!(
            archived,
            [
                path_in(&dir, "src/a.txt"),
                path_in(&dir, "src/sub"),
                path_in(&dir, "src/sub/c.txt")
            ]
        );
        let list = std::process::Command::new("tar")
            .args(["tzf", &path_in(&dir, "out.tgz")])
            .output()
            .expect("tar");
        let mut names: Vec<String> = String::from_utf8_lossy(&list.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        assert_eq!(names, ["src/a.txt", "src/sub/", "src/sub/c.txt"]);
        // A changed member's header (its size) is a change again.
        std::fs::write(dir.path().join("src/a.txt"), "alpha beta\n").expect("write");
        let (_, out) = rewrite_twice(&params);
        assert!(out.changed);
    }

    #[test]
    fn one_file_is_compressed_and_removed() {
        if !have("bzip2") {
            return;
        }
        let dir = tree();
        let params = json!({"path": path_in(&dir, "src/a.txt"), "format": "bz2", "remove": true});
        let (_, out) = testing::converge(&Archive, &params);
        assert_eq!(
            get(&out.result, "dest"),
            &json!(path_in(&dir, "src/a.txt.bz2"))
        );
        assert_eq!(get(&out.result, "dest_state"), "compress");
        assert!(!dir.path().join("src/a.txt").exists());
        let again = testing::plan(&Archive, &params);
        assert_eq!(get(&again.result, "dest_state"), "compress");
        assert_eq!(
            get(&again.result, "missing"),
            &json!([path_in(&dir, "src/a.txt")])
        );
    }

    #[test]
    fn a_zip_of_a_glob_and_check_mode_touches_nothing() {
        if !have("zip") || !have("unzip") {
            return;
        }
        let dir = tree();
        let params = json!({"path": format!("{}/*.txt", path_in(&dir, "src")),
                            "dest": path_in(&dir, "out.zip"), "format": "zip"});
        let plan = testing::plan(&Archive, &params);
        assert!(!plan.is_empty());
        assert_eq!(get(&plan.result, "dest_state"), "absent");
        assert!(
            !dir.path().join("out.zip").exists(),
            "plan wrote the archive"
        );
        let (_, out) = rewrite_twice(&params);
        assert_eq!(
            get(&out.result, "arcroot"),
            &json!(format!("{}/", path_in(&dir, "src")))
        );
        // A member's content (its CRC) changed: a change again.
        std::fs::write(dir.path().join("src/a.txt"), "changed\n").expect("write");
        let plan = testing::plan(&Archive, &params);
        assert!(testing::apply(&Archive, &params, plan).changed);
    }

    #[test]
    fn no_source_and_multiple_sources_without_dest_fail() {
        let dir = tree();
        let e = DynModule::plan(
            &Archive,
            &json!({"path": format!("{}/*.none", path_in(&dir, "src"))}),
            &mut testing::host(),
        )
        .expect_err("no paths");
        assert_eq!(e.to_string(), "Error, no source paths were found");
        let e = DynModule::plan(
            &Archive,
            &json!({"path": path_in(&dir, "src")}),
            &mut testing::host(),
        )
        .expect_err("no dest");
        assert!(e.to_string().contains("must specify \"dest\""), "{e}");
    }
}
