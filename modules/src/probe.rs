//! Shell snippets that look at a path on the host, and their parsers.
//!
//! Modules bundle these snippets into one script per plan, so a probe costs
//! one round trip however many facts it gathers. Every line a snippet prints
//! starts with a caller-chosen tag, so several probes can share one script
//! and one output without getting mixed up.

use serde_json::{json, Map, Value};

use crate::params::{mode_str, same_principal, Mode};
use crate::shell_quote::quote;
use crate::ModuleError;

/// The kind of a filesystem object, from the `S_IFMT` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Link,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// Something `stat` names otherwise.
    Unknown,
}

impl Kind {
    fn from_raw(raw: u32) -> Kind {
        match raw & 0o170000 {
            0o100000 => Kind::File,
            0o040000 => Kind::Dir,
            0o120000 => Kind::Link,
            0o020000 => Kind::Char,
            0o060000 => Kind::Block,
            0o010000 => Kind::Fifo,
            0o140000 => Kind::Socket,
            _ => Kind::Unknown,
        }
    }

    /// The word Ansible's `file` module uses for a path's state.
    pub fn state_word(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "directory",
            Kind::Link => "link",
            _ => "file",
        }
    }
}

/// What `stat` says about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// What the path is.
    pub kind: Kind,
    /// Permission bits, including setuid/setgid/sticky.
    pub mode: u32,
    /// The owner's uid.
    pub uid: u32,
    /// The group's gid.
    pub gid: u32,
    /// `UNKNOWN` when the uid has no name, as stat prints it.
    pub owner: String,
    /// The group's name (the gid when it has none).
    pub group: String,
    /// Size in bytes.
    pub size: u64,
    /// Inode number.
    pub inode: u64,
    /// Device number.
    pub dev: u64,
    /// Number of hard links.
    pub nlink: u64,
    /// Last access, epoch seconds.
    pub atime: i64,
    /// Last modification, epoch seconds.
    pub mtime: i64,
    /// Last status change, epoch seconds.
    pub ctime: i64,
}

/// The `stat -c` format matching [`parse_stat`]; names never contain spaces.
const STAT_FORMAT: &str = "%f %a %u %g %U %G %s %i %d %h %X %Y %Z";

/// Print `TAG <fields>` for `path_word` (an already quoted shell word), or
/// `TAG -` when nothing is there. Without `follow` a symlink is described
/// itself; with it, a dangling link counts as missing, as `os.stat` does.
pub fn stat_snippet(tag: &str, path_word: &str, follow: bool) -> String {
    let (test, flag) = if follow {
        (format!("[ -e {path_word} ]"), "-L ")
    } else {
        (format!("[ -e {path_word} ] || [ -L {path_word} ]"), "")
    };
    format!(
        "if {test}; then stat {flag}-c {fmt} -- {path_word} || echo {tag} -; else echo {tag} -; fi\n",
        fmt = quote(&format!("{tag} {STAT_FORMAT}")),
    )
}

/// [`stat_snippet`] twice, `nofollow_tag` describing the path itself and
/// `follow_tag` what it leads to, with one `stat` process unless the path
/// is a symlink (each `stat` costs the host a process start; for anything
/// but a symlink both descriptions are the same).
pub fn stat_pair_snippet(nofollow_tag: &str, follow_tag: &str, path_word: &str) -> String {
    let (n, f) = (nofollow_tag, follow_tag);
    let link_self = quote(&format!("{n} {STAT_FORMAT}"));
    let link_target = stat_snippet(f, path_word, true);
    let both = quote(&format!("{n} {STAT_FORMAT}\n{f} {STAT_FORMAT}"));
    format!(
        "if [ -L {path_word} ]; then stat -c {link_self} -- {path_word} || echo {n} -\n{link_target}\
         elif [ -e {path_word} ]; then stat -c {both} -- {path_word} || {{ echo {n} -; echo {f} -; }}\n\
         else echo {n} -; echo {f} -; fi\n"
    )
}

/// Print `TAG <hex>` with the sha1 of a regular, readable file.
pub fn sha1_snippet(tag: &str, path_word: &str) -> String {
    checksum_snippet(tag, path_word, "sha1sum")
}

/// Print `TAG <hex>` with the output of `tool` (`sha256sum`, `md5sum`, ...)
/// for a regular, readable file; nothing otherwise.
pub fn checksum_snippet(tag: &str, path_word: &str, tool: &str) -> String {
    format!(
        "if [ -f {path_word} ] && [ -r {path_word} ]; then s=$({tool} < {path_word}) && echo {tag} \"${{s%% *}}\"; fi\n",
    )
}

/// The line of `out` that starts with `TAG `, without the tag.
pub fn tagged<'a>(out: &'a str, tag: &str) -> Option<&'a str> {
    let prefix = format!("{tag} ");
    out.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

/// Why a probe's output could not be read: the script printed something
/// other than what its parser expects (a host without a tool, a script
/// cut short).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("the probe printed no `{tag}` line")]
    /// A value the probe should have printed is missing.
    Missing {
        /// The value's tag.
        tag: String,
    },
    #[error("the probe printed bad base64 for `{tag}`: {reason}")]
    /// A value is not valid base64.
    BadBase64 {
        /// The value's tag.
        tag: String,
        /// The decoder's message.
        reason: String,
    },
    #[error("unexpected probe line {tag} {line:?}")]
    /// A tagged line whose value has the wrong shape.
    BadLine {
        /// The line's tag.
        tag: String,
        /// The value as printed.
        line: String,
    },
    #[error("unexpected stat output: {line:?}")]
    /// A stat line without the fields the snippet prints.
    BadStat {
        /// The line as printed.
        line: String,
    },
    #[error("{what} printed bad JSON: {reason}")]
    /// A command's JSON output does not parse.
    BadJson {
        /// The command.
        what: &'static str,
        /// The parser's message.
        reason: String,
    },
}

impl From<ProbeError> for ModuleError {
    fn from(e: ProbeError) -> Self {
        ModuleError::failed(e.to_string())
    }
}

/// [`tagged`], where a missing line is an error.
pub fn tagged_line<'a>(out: &'a str, tag: &str) -> Result<&'a str, ProbeError> {
    tagged(out, tag).ok_or_else(|| ProbeError::Missing {
        tag: tag.to_string(),
    })
}

/// Text a probe printed base64-encoded (so any bytes fit on one line),
/// decoded; invalid UTF-8 is replaced, as file contents are compared as text.
pub fn decode_b64(tag: &str, text: &str) -> Result<String, ProbeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| ProbeError::BadBase64 {
            tag: tag.to_string(),
            reason: e.to_string(),
        })
}

/// A file's content from the line `TAG <base64>`, or `None` from `TAG -`
/// (the file does not exist): the shape the modules' probe scripts print
/// with `base64 -w0`.
pub fn tagged_file(out: &str, tag: &str) -> Result<Option<String>, ProbeError> {
    let line = tagged_line(out, tag)?.trim();
    if line == "-" {
        return Ok(None);
    }
    decode_b64(tag, line).map(Some)
}

/// Parse a [`stat_snippet`]'s line; `Ok(None)` when the path is missing.
pub fn parse_stat(out: &str, tag: &str) -> Result<Option<FileStat>, ProbeError> {
    let line = tagged_line(out, tag)?;
    if line.trim() == "-" {
        return Ok(None);
    }
    let f: Vec<&str> = line.split(' ').collect();
    let bad = || ProbeError::BadStat {
        line: line.to_string(),
    };
    if f.len() != 13 {
        return Err(bad());
    }
    let num = |i: usize| f[i].parse::<u64>().map_err(|_| bad());
    let int = |i: usize| f[i].parse::<i64>().map_err(|_| bad());
    let raw = u32::from_str_radix(f[0], 16).map_err(|_| bad())?;
    Ok(Some(FileStat {
        kind: Kind::from_raw(raw),
        mode: u32::from_str_radix(f[1], 8).map_err(|_| bad())?,
        uid: u32::try_from(num(2)?).map_err(|_| bad())?,
        gid: u32::try_from(num(3)?).map_err(|_| bad())?,
        owner: f[4].to_string(),
        group: f[5].to_string(),
        size: num(6)?,
        inode: num(7)?,
        dev: num(8)?,
        nlink: num(9)?,
        atime: int(10)?,
        mtime: int(11)?,
        ctime: int(12)?,
    }))
}

/// Owner, group and mode a module was asked to enforce on a path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WantedAttrs {
    /// The owner the task wants.
    pub owner: Option<String>,
    /// The group the task wants.
    pub group: Option<String>,
    /// The mode the task wants.
    pub mode: Option<Mode>,
}

impl WantedAttrs {
    /// A task's `owner`, `group` and `mode` where no source file exists
    /// whose mode `preserve` could keep: there `preserve` asks for nothing.
    pub fn ignoring_preserve(
        owner: &Option<String>,
        group: &Option<String>,
        mode: &Option<Mode>,
    ) -> Self {
        WantedAttrs {
            owner: owner.clone(),
            group: group.clone(),
            mode: mode.clone().filter(|m| *m != Mode::Preserve),
        }
    }

    /// The change lines needed to bring `st` to these attributes, and the
    /// numeric mode to set (symbolic modes are resolved against `st`).
    pub fn diff(&self, path: &str, st: &FileStat) -> (Vec<String>, Option<u32>) {
        let mut changes = Vec::new();
        let mut mode = None;
        // Linux cannot chmod a symlink itself (its mode is always 0777).
        let mode_wanted = self.mode.as_ref().filter(|_| st.kind != Kind::Link);
        if let Some(m) = mode_wanted.and_then(|m| m.resolve(Some(st.mode), st.kind == Kind::Dir)) {
            if m != st.mode {
                changes.push(format!(
                    "mode {} -> {} on {path}",
                    mode_str(st.mode),
                    mode_str(m)
                ));
            }
            mode = Some(m);
        }
        if let Some(o) = &self.owner {
            if !same_principal(o, &st.owner, st.uid) {
                changes.push(format!("owner {} -> {o} on {path}", st.owner));
            }
        }
        if let Some(g) = &self.group {
            if !same_principal(g, &st.group, st.gid) {
                changes.push(format!("group {} -> {g} on {path}", st.group));
            }
        }
        (changes, mode)
    }

    /// A script that sets these attributes on `path_word` (already quoted),
    /// with the mode already resolved to `mode`. `nofollow` changes a
    /// symlink's own owner rather than its target's.
    pub fn apply_script(&self, path_word: &str, mode: Option<u32>, nofollow: bool) -> String {
        let h = if nofollow { "-h " } else { "" };
        let mut s = String::new();
        match (&self.owner, &self.group) {
            (Some(o), Some(g)) => s.push_str(&format!(
                "chown {h}-- {} {path_word}\n",
                quote(&format!("{o}:{g}"))
            )),
            (Some(o), None) => s.push_str(&format!("chown {h}-- {} {path_word}\n", quote(o))),
            (None, Some(g)) => s.push_str(&format!("chgrp {h}-- {} {path_word}\n", quote(g))),
            (None, None) => {}
        }
        // chmod after chown: chown clears setuid/setgid bits.
        if let Some(m) = mode {
            s.push_str(&format!("chmod {} -- {path_word}\n", mode_str(m)));
        }
        s
    }
}

/// Print `UID n`/`GID n` for the wanted owner and group, or `NOUSER`/
/// `NOGROUP` when they do not exist, so a plan fails as Ansible does
/// ("failed to look up user") before any change is made, and a result can
/// report the ids. Numeric ids are taken as they are, as chown takes them.
pub fn principals_snippet(want: &WantedAttrs) -> String {
    let mut s = String::new();
    if let Some(o) = want.owner.as_deref().filter(|o| o.parse::<u32>().is_err()) {
        s.push_str(&format!(
            "if u=$(id -u -- {} 2>/dev/null); then echo UID \"$u\"; else echo NOUSER -; fi\n",
            quote(o)
        ));
    }
    if let Some(g) = want.group.as_deref().filter(|g| g.parse::<u32>().is_err()) {
        s.push_str(&format!(
            "if g=$(getent group -- {} 2>/dev/null); then g=${{g#*:*:}}; echo GID \"${{g%%:*}}\"; else echo NOGROUP -; fi\n",
            quote(g)
        ));
    }
    s
}

/// The wanted owner's and group's numeric ids, from a [`principals_snippet`].
pub fn principal_ids(out: &str, want: &WantedAttrs) -> (Option<u32>, Option<u32>) {
    let id = |v: &Option<String>, tag: &str| {
        v.as_deref().and_then(|x| {
            x.parse::<u32>()
                .ok()
                .or_else(|| tagged(out, tag).and_then(|n| n.trim().parse().ok()))
        })
    };
    (id(&want.owner, "UID"), id(&want.group, "GID"))
}

/// The error for a [`principals_snippet`]'s output, if any.
pub fn check_principals(out: &str, want: &WantedAttrs) -> Result<(), ModuleError> {
    if let (Some(o), Some(_)) = (&want.owner, tagged(out, "NOUSER")) {
        return Err(ModuleError::failed(format!(
            "chown failed: failed to look up user {o}"
        )));
    }
    if let (Some(g), Some(_)) = (&want.group, tagged(out, "NOGROUP")) {
        return Err(ModuleError::failed(format!(
            "chgrp failed: failed to look up group {g}"
        )));
    }
    Ok(())
}

/// Ansible's common file result keys (`mode`, `owner`, `uid`, ...).
pub fn file_result(path_key: &str, path: &str, st: Option<&FileStat>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(path_key.into(), json!(path));
    match st {
        None => {
            m.insert("state".into(), json!("absent"));
        }
        Some(st) => {
            m.insert("state".into(), json!(st.kind.state_word()));
            m.insert("mode".into(), json!(mode_str(st.mode)));
            m.insert("owner".into(), json!(st.owner));
            m.insert("group".into(), json!(st.group));
            m.insert("uid".into(), json!(st.uid));
            m.insert("gid".into(), json!(st.gid));
            m.insert("size".into(), json!(st.size));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalHost;
    use crate::Host;

    #[test]
    fn tagged_file_decodes_content_and_tells_missing_lines_and_bad_base64() {
        let out = "A aGVsbG8K\nB -\nC not*base64\n";
        assert_eq!(tagged_file(out, "A"), Ok(Some("hello\n".to_string())));
        assert_eq!(tagged_file(out, "B"), Ok(None));
        assert!(matches!(
            tagged_file(out, "C"),
            Err(ProbeError::BadBase64 { tag, .. }) if tag == "C"
        ));
        assert_eq!(
            tagged_file(out, "D"),
            Err(ProbeError::Missing { tag: "D".into() })
        );
        assert_eq!(
            ModuleError::from(ProbeError::Missing { tag: "D".into() }).to_string(),
            "the probe printed no `D` line"
        );
    }

    #[test]
    fn stat_snippet_reads_a_file_and_a_missing_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a b");
        std::fs::write(&f, "hello\n").expect("write");
        let fw = quote(&f.to_string_lossy());
        let missing = quote(&dir.path().join("nope").to_string_lossy());
        let script = format!(
            "{}{}{}",
            stat_snippet("A", &fw, false),
            stat_snippet("B", &missing, true),
            sha1_snippet("S", &fw)
        );
        let out = LocalHost::new("t").run(&script, None).expect("run");
        let out = out.stdout_str();
        let st = parse_stat(&out, "A").expect("parse").expect("exists");
        assert_eq!(st.kind, Kind::File);
        assert_eq!(st.size, 6);
        assert_eq!(parse_stat(&out, "B"), Ok(None));
        assert_eq!(
            tagged(&out, "S"),
            Some("f572d396fae9206628714fb2ce00f72e94f2258f")
        );
    }

    #[test]
    fn stat_pair_snippet_matches_two_stat_snippets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        std::fs::write(p("file"), "hello\n").expect("write");
        std::fs::create_dir(p("dir")).expect("mkdir");
        std::os::unix::fs::symlink(p("file"), p("link")).expect("link");
        std::os::unix::fs::symlink(p("nope"), p("dangling")).expect("dangling");
        for name in ["file", "dir", "link", "dangling", "nope"] {
            let w = quote(&p(name));
            let run = |script: String| {
                LocalHost::new("t")
                    .run(&script, None)
                    .expect("run")
                    .stdout_str()
            };
            let pair = run(stat_pair_snippet("P", "T", &w));
            let apart = run(format!(
                "{}{}",
                stat_snippet("P", &w, false),
                stat_snippet("T", &w, true)
            ));
            for tag in ["P", "T"] {
                // atime may move between the two runs; compare the rest.
                let strip = |out: &str| {
                    parse_stat(out, tag)
                        .expect("parse")
                        .map(|st| FileStat { atime: 0, ..st })
                };
                assert_eq!(strip(&pair), strip(&apart), "{name} {tag}: {pair}");
            }
        }
    }
}
