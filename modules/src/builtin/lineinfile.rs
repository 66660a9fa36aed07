//! `lineinfile`: make sure one line is (or no line matching is) in a file.
//!
//! The plan reads the file in its one probe, computes the new content in
//! Rust with Ansible's exact rules (below) and keeps it in `Plan.state`, so
//! apply is a single atomic `write_file` (plus a trip each for `backup` and
//! `validate`).
//!
//! The rules, as Ansible applies them for `state=present`: the *last* line
//! matching `regexp` (or containing `search_string`; the *first* with
//! `firstmatch`) is replaced; with no such line, a line equal to `line`
//! means nothing to do; otherwise the line goes after the last line matching
//! `insertafter` (before the last matching `insertbefore`), at `BOF`, or at
//! the end. With `backrefs`, no match means no change. `state=absent`
//! removes every matching line.
//!
//! Differences from Ansible: regular expressions use Rust's `regex` syntax
//! (no look-around or backreferences in patterns); `$` matches before a
//! line's newline as in Python. Backrefs in `line` use Python's `\1` and
//! `\g<name>` forms.

use regex::bytes::{Captures, Regex};
use serde::Deserialize;
use serde_json::json;

use crate::params::{de_bool, de_opt_bool, de_opt_mode, de_opt_string, Mode};
use crate::probe::WantedAttrs;
use crate::shell_quote::quote_path;
use crate::textfile::{self, lines_of, rstrip_eol, Edit, Read};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum LineState {
    #[default]
    /// It should be there.
    Present,
    /// It should not be there.
    Absent,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `lineinfile`: what `herd doc` shows, and what the parser takes.
pub struct LineInFileParams {
    /// The file to edit.
    #[serde(alias = "dest", alias = "destfile", alias = "name")]
    pub path: String,
    /// `present`: the line is in the file; `absent`: lines matching `regexp`, `search_string`
    /// or equal to `line` are removed.
    #[serde(default)]
    pub state: LineState,
    /// A regular expression (Rust `regex` syntax) for the line to replace or remove; with
    /// `present` the last matching line is replaced (the first with `firstmatch`).
    #[serde(alias = "regex")]
    pub regexp: Option<String>,
    /// A literal string for the line to replace or remove, instead of `regexp`.
    pub search_string: Option<String>,
    /// The line to put in the file (required for `state: present`). With `backrefs`, `\1` and
    /// `\g<name>` refer to `regexp`'s groups.
    #[serde(default, alias = "value", deserialize_with = "de_opt_string")]
    pub line: Option<String>,
    /// Where a new line goes when nothing matched: `EOF` (the default) or a regular expression;
    /// the line goes after its last match.
    pub insertafter: Option<String>,
    /// Where a new line goes when nothing matched: `BOF` or a regular expression; the line goes
    /// before its last match.
    pub insertbefore: Option<String>,
    /// Fill `line` from `regexp`'s groups; when `regexp` matches nothing the file is left
    /// alone.
    #[serde(default, deserialize_with = "de_bool")]
    pub backrefs: bool,
    /// Create the file when it does not exist (else the task fails).
    #[serde(default, deserialize_with = "de_bool")]
    pub create: bool,
    /// Keep a timestamped copy of the file (`FILE.PID.YYYY-MM-DD@HH:MM:SS~`) before changing
    /// it; its path is returned as `backup_file`.
    #[serde(default, deserialize_with = "de_bool")]
    pub backup: bool,
    /// `insertafter`/`insertbefore` use the first matching line instead of the last.
    #[serde(default, deserialize_with = "de_bool")]
    pub firstmatch: bool,
    /// A command run on the new content before it replaces the file, with `%s` standing for a
    /// temp file; the task fails if it exits non-zero.
    pub validate: Option<String>,
    /// User that should own the file (name or uid); unset leaves it as it is.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub owner: Option<String>,
    /// Group that should own the file (name or gid); unset leaves it as it is.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub group: Option<String>,
    /// Permissions: an octal string (`"0644"`), a YAML octal number (`0644`) or a symbolic mode
    /// (`u=rw,g=r,o=r`); unset leaves them as they are (a new file gets the umask's).
    #[serde(default, deserialize_with = "de_opt_mode")]
    pub mode: Option<Mode>,
    /// Accepted and ignored: files are always written atomically (temp file, then rename).
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

/// The `lineinfile` module.
pub struct LineInFile;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: LineInFile::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// Compile a user regex; `module`/`field` name it in the error.
pub fn compile(module: &'static str, field: &str, re: &str) -> Result<Regex, ModuleError> {
    Regex::new(re).map_err(|e| {
        ModuleError::Params(ParamError::Invalid {
            module,
            path: field.into(),
            reason: e.to_string(),
        })
    })
}

/// Python's `re.search` on a line read with `readlines`: there `$` also
/// matches just before the final newline, so search the line without it.
pub(crate) fn search<'a>(re: &Regex, line: &'a [u8]) -> Option<Captures<'a>> {
    re.captures(line.strip_suffix(b"\n").unwrap_or(line))
}

/// Python's `Match.expand`: `\1`, `\g<1>`, `\g<name>` and the usual escapes.
pub fn expand(caps: &Captures<'_>, template: &str) -> Vec<u8> {
    let group = |out: &mut Vec<u8>, name: &str| {
        let m = match name.parse::<usize>() {
            Ok(i) => caps.get(i),
            Err(_) => caps.name(name),
        };
        if let Some(m) = m {
            out.extend_from_slice(m.as_bytes());
        }
    };
    let b = template.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        match c {
            b'0'..=b'9' => {
                let mut j = i + 1;
                while j < b.len() && j < i + 3 && b[j].is_ascii_digit() {
                    j += 1;
                }
                group(&mut out, &template[i + 1..j]);
                i = j;
            }
            b'g' if b.get(i + 2) == Some(&b'<') => match template[i + 3..].find('>') {
                Some(end) => {
                    group(&mut out, &template[i + 3..i + 3 + end]);
                    i += 4 + end;
                }
                None => {
                    out.extend_from_slice(b"\\g");
                    i += 2;
                }
            },
            b'n' | b't' | b'r' | b'\\' | b'a' | b'f' | b'v' => {
                out.push(match c {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'a' => 7,
                    b'f' => 12,
                    b'v' => 11,
                    _ => b'\\',
                });
                i += 2;
            }
            _ => {
                out.push(b'\\');
                i += 1;
            }
        }
    }
    out
}

/// What `present` does to the lines, and its message.
fn present(
    p: &LineInFileParams,
    lines: &mut Vec<Vec<u8>>,
    line: &str,
    re: Option<&Regex>,
) -> Result<Option<&'static str>, ModuleError> {
    let line_b = line.as_bytes();
    let (ins_after, ins_before) = match (&p.insertafter, &p.insertbefore) {
        (None, None) => (Some("EOF"), None),
        (a, b) => (a.as_deref(), b.as_deref()),
    };
    let ins_re = match (ins_after, ins_before) {
        (Some(a), _) if a != "BOF" && a != "EOF" => {
            Some(compile(LineInFile::NAME, "insertafter", a)?)
        }
        (None, Some(b)) if b != "BOF" => Some(compile(LineInFile::NAME, "insertbefore", b)?),
        _ => None,
    };

    // 1. The line matching regexp / containing search_string.
    let mut found: Option<usize> = None;
    if let Some(re) = re {
        for (i, l) in lines.iter().enumerate() {
            if search(re, l).is_some() {
                found = Some(i);
                if p.firstmatch {
                    break;
                }
            }
        }
    } else if let Some(s) = &p.search_string {
        for (i, l) in lines.iter().enumerate() {
            if contains(l, s.as_bytes()) {
                found = Some(i);
                if p.firstmatch {
                    break;
                }
            }
        }
    }
    let matched = found.is_some();
    // 2. Without such a line: the line itself, or where to insert.
    let mut insert_at: Option<usize> = None;
    if !matched {
        for (i, l) in lines.iter().enumerate() {
            if rstrip_eol(l) == line_b {
                found = Some(i);
            } else if ins_re.as_ref().is_some_and(|r| search(r, l).is_some()) {
                insert_at = Some(if ins_after.is_some() { i + 1 } else { i });
                if p.firstmatch {
                    break;
                }
            }
        }
    }

    let with_eol = |mut l: Vec<u8>| {
        if !l.ends_with(b"\n") {
            l.push(b'\n');
        }
        l
    };
    if let Some(i) = found {
        let new_line = match (p.backrefs && matched, re) {
            (true, Some(re)) => {
                let caps = search(re, &lines[i])
                    .ok_or_else(|| ModuleError::failed("regexp stopped matching"))?;
                expand(&caps, line)
            }
            _ => line_b.to_vec(),
        };
        let new_line = with_eol(new_line);
        if lines[i] != new_line {
            lines[i] = new_line;
            return Ok(Some("line replaced"));
        }
        return Ok(None);
    }
    if p.backrefs {
        // Without a match there is nothing to fill the backrefs from.
        return Ok(None);
    }
    let new_line = with_eol(line_b.to_vec());
    let ensure_last_eol = |lines: &mut Vec<Vec<u8>>| {
        if let Some(last) = lines.last_mut() {
            if !last.ends_with(b"\n") && !last.ends_with(b"\r") {
                last.push(b'\n');
            }
        }
    };
    if ins_before == Some("BOF") || ins_after == Some("BOF") {
        lines.insert(0, new_line);
        return Ok(Some("line added"));
    }
    match insert_at {
        None => {
            ensure_last_eol(lines);
            lines.push(new_line);
        }
        Some(at) if ins_after.is_some() && ins_after != Some("EOF") => {
            if at == lines.len() {
                if rstrip_eol(&lines[at - 1]) == line_b {
                    return Ok(None);
                }
                ensure_last_eol(lines);
                lines.push(new_line);
            } else if rstrip_eol(&lines[at]) == line_b {
                return Ok(None);
            } else {
                lines.insert(at, new_line);
            }
        }
        Some(_) if ins_after == Some("EOF") => {
            ensure_last_eol(lines);
            lines.push(new_line);
        }
        Some(at) => lines.insert(at, new_line),
    }
    Ok(Some("line added"))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

impl LineInFile {
    fn want(p: &LineInFileParams) -> WantedAttrs {
        WantedAttrs::ignoring_preserve(&p.owner, &p.group, &p.mode)
    }

    fn check(p: &LineInFileParams) -> Result<Option<Regex>, ModuleError> {
        if p.insertafter.is_some() && p.insertbefore.is_some() {
            return Err(invalid(
                "insertbefore",
                "mutually exclusive with insertafter",
            ));
        }
        if p.regexp.is_some() && p.search_string.is_some() {
            return Err(invalid("search_string", "mutually exclusive with regexp"));
        }
        if p.backrefs && p.search_string.is_some() {
            return Err(invalid("backrefs", "mutually exclusive with search_string"));
        }
        match p.state {
            LineState::Present => {
                if p.backrefs && p.regexp.is_none() {
                    return Err(invalid("backrefs", "regexp is required with backrefs=true"));
                }
                if p.line.is_none() {
                    return Err(invalid("line", "line is required with state=present"));
                }
            }
            LineState::Absent => {
                if p.regexp.is_none() && p.search_string.is_none() && p.line.is_none() {
                    return Err(invalid(
                        "line",
                        "one of line, search_string, or regexp is required with state=absent",
                    ));
                }
            }
        }
        p.regexp
            .as_deref()
            .map(|r| compile(Self::NAME, "regexp", r))
            .transpose()
    }
}

impl Module for LineInFile {
    const NAME: &'static str = "lineinfile";
    const DOC_SHORT: &'static str = "Make sure one line is in a text file (or is not).";
    const DOC_LONG: &'static str = r##"Edits one line of a file and keeps the rest as it is; the file is written atomically and only when it changes. `--diff` shows the change."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Allow the deploy user in sudoers
  lineinfile:
    path: /etc/sudoers.d/deploy
    line: "deploy ALL=(ALL) NOPASSWD: ALL"
    create: true
    mode: "0440"
    validate: visudo -cf %s
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        (
            "msg",
            "What was done: `line added`, `line replaced`, `1 line(s) removed`.",
        ),
        ("backup", "The backup's path, with `backup: true`."),
    ];
    type Params = LineInFileParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let re = Self::check(p)?;
        let want = Self::want(p);
        let setup = format!("p={}", quote_path(&p.path));
        let dest = textfile::probe(host, &setup, true, &want, Read::All, "")?;
        let mut plan = Plan::default();
        plan.result.insert("backup".into(), json!(""));
        if p.state == LineState::Absent && !dest.exists() && !dest.is_dir() {
            plan.result.insert("msg".into(), json!("file not present"));
            return Ok(plan);
        }
        textfile::check_editable(&dest, p.create)?;
        let before = dest.content.clone().unwrap_or_default();
        let mut lines = lines_of(&before);
        let msg = match p.state {
            LineState::Present => present(
                p,
                &mut lines,
                p.line.as_deref().unwrap_or_default(),
                re.as_ref(),
            )?
            .map(str::to_string),
            LineState::Absent => {
                let line = p.line.as_deref().unwrap_or_default().as_bytes();
                let n = lines.len();
                lines.retain(|l| {
                    let hit = match (&re, &p.search_string) {
                        (Some(re), _) => search(re, l).is_some(),
                        (None, Some(s)) => contains(l, s.as_bytes()),
                        (None, None) => rstrip_eol(l) == line,
                    };
                    !hit
                });
                let removed = n - lines.len();
                plan.result.insert("found".into(), json!(removed));
                (removed > 0).then(|| format!("{removed} line(s) removed"))
            }
        };
        let after: Vec<u8> = lines.concat();
        let mode = textfile::resolve_mode(&want, &dest);
        let path = dest.path.clone();
        if let Some(m) = &msg {
            plan.changes.push(format!("{m} in {path}"));
            if let Some(d) = textfile::diff(&path, &before, &after) {
                plan.diffs.push(d);
            }
        }
        let attr_changes = match &dest.stat {
            Some(st) => want.diff(&path, st).0,
            None => Vec::new(),
        };
        // A file `create` makes starts as the umask makes it (0644, the
        // runner's owner and group); Ansible then sets the wanted
        // attributes and says so in `msg` when they differ from that.
        let new_file_attrs = dest.stat.is_none()
            && msg.is_some()
            && !want
                .diff(&path, &textfile::fresh_file_stat(&dest))
                .0
                .is_empty();
        let attrs_changed = !attr_changes.is_empty() || new_file_attrs;
        plan.changes.extend(attr_changes);
        let msg = match (msg, attrs_changed) {
            (Some(m), true) => format!("{m} and ownership, perms or SE linux context changed"),
            (Some(m), false) => m,
            (None, true) => "ownership, perms or SE linux context changed".into(),
            (None, false) => String::new(),
        };
        plan.result.insert("msg".into(), json!(msg));
        if !plan.is_empty() {
            let content = (before != after || !dest.exists()).then_some(&after[..]);
            plan.state = Edit::new(&dest, content, mode).to_state();
        }
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let edit = Edit::from_state(Self::NAME, &plan.state)?;
        let backup = edit.apply(
            host,
            Self::NAME,
            &Self::want(p),
            p.backup,
            p.validate.as_deref(),
        )?;
        let mut result = plan.result.clone();
        result.insert("backup".into(), json!(backup.unwrap_or_default()));
        Ok(Outcome::changed_with_result_msg(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{converge, get, host, path_in, plan};
    use crate::DynModule;
    use serde_json::Value;
    use std::os::unix::fs::PermissionsExt;

    fn file_with(dir: &tempfile::TempDir, text: &str) -> String {
        let f = path_in(dir, "f");
        std::fs::write(&f, text).expect("write");
        f
    }

    fn read(p: &str) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    /// Converge `params` (with `path` set) on a file holding `text`.
    fn edit(text: &str, params: Value) -> (Plan, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = file_with(&dir, text);
        let mut params = params;
        params["path"] = json!(f);
        // Planning alone leaves the file as it was.
        assert!(!plan(&LineInFile, &params).is_empty());
        assert_eq!(read(&f), text);
        let (first, _) = converge(&LineInFile, &params);
        (first, read(&f))
    }

    /// Plan only, on a file holding `text`; the file must not change.
    fn unchanged(text: &str, params: Value) {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = file_with(&dir, text);
        let mut params = params;
        params["path"] = json!(f);
        let pl = plan(&LineInFile, &params);
        assert!(pl.is_empty(), "{:?}", pl.changes);
        assert_eq!(read(&f), text);
    }

    #[test]
    fn regexp_replaces_the_last_match() {
        let (first, text) = edit(
            "SELINUX=permissive\nx\nSELINUX=disabled\n",
            json!({"regexp": "^SELINUX=", "line": "SELINUX=enforcing"}),
        );
        assert_eq!(text, "SELINUX=permissive\nx\nSELINUX=enforcing\n");
        assert_eq!(first.diffs.len(), 1);
        let (_, text) = edit(
            "a=1\na=2\n",
            json!({"regexp": "^a=", "line": "a=3", "firstmatch": true}),
        );
        assert_eq!(text, "a=3\na=2\n");
        // `$` matches before the newline, as in Python.
        let (_, text) = edit(
            "port 22\n",
            json!({"regexp": "^port 22$", "line": "port 2222"}),
        );
        assert_eq!(text, "port 2222\n");
    }

    #[test]
    fn appends_at_eof_and_inserts_after_or_before() {
        let (_, text) = edit("a\nb", json!({"line": "c"}));
        assert_eq!(text, "a\nb\nc\n");
        let (_, text) = edit(
            "[main]\nx=1\n[other]\n",
            json!({"line": "y=2", "insertafter": "^\\[main\\]"}),
        );
        assert_eq!(text, "[main]\ny=2\nx=1\n[other]\n");
        let (_, text) = edit("a\n# end\n", json!({"line": "b", "insertbefore": "^# end"}));
        assert_eq!(text, "a\nb\n# end\n");
        let (_, text) = edit("a\n", json!({"line": "#!/bin/sh", "insertbefore": "BOF"}));
        assert_eq!(text, "#!/bin/sh\na\n");
        // insertafter that matches nothing appends.
        let (_, text) = edit("a\n", json!({"line": "z", "insertafter": "^nothing"}));
        assert_eq!(text, "a\nz\n");
        // A regexp that matches nothing, with the line present: no change.
        unchanged(
            "a\nListen 80\n",
            json!({"regexp": "^#Listen", "line": "Listen 80"}),
        );
        unchanged("a\nb\n", json!({"line": "a", "insertafter": "^b"}));
    }

    #[test]
    fn ansible_doc_examples() {
        // "Ensure the default Apache port is 8080": no Listen line yet, so it
        // goes after the commented one; then the regexp owns it.
        let conf = "#Listen 12.34.56.78:80\n#Listen 80\nServerRoot /etc\n";
        let params =
            json!({"regexp": "^Listen ", "insertafter": "^#Listen ", "line": "Listen 8080"});
        let (_, text) = edit(conf, params.clone());
        assert_eq!(
            text,
            "#Listen 12.34.56.78:80\n#Listen 80\nListen 8080\nServerRoot /etc\n"
        );
        let (_, text) = edit("Listen 80\n", params);
        assert_eq!(text, "Listen 8080\n");
        // "Add a line to a file if it does not exist, without passing regexp".
        let (_, text) = edit(
            "127.0.0.1 localhost\n",
            json!({"line": "192.168.1.99 foo.lab.net foo"}),
        );
        assert_eq!(text, "127.0.0.1 localhost\n192.168.1.99 foo.lab.net foo\n");
        // insertbefore the first match with firstmatch.
        let (_, text) = edit(
            "www 80/tcp\nwww 8080/tcp\n",
            json!({"insertbefore": "^www.*/tcp", "line": "# http", "firstmatch": true}),
        );
        assert_eq!(text, "# http\nwww 80/tcp\nwww 8080/tcp\n");
    }

    #[test]
    fn backrefs() {
        let (_, text) = edit(
            "  Listen 80 # web\n",
            json!({"regexp": "^(\\s*)Listen (\\d+)(.*)$", "line": "\\1Listen 8080\\3", "backrefs": "yes"}),
        );
        assert_eq!(text, "  Listen 8080 # web\n");
        let (_, text) = edit(
            "user=bob\n",
            json!({"regexp": "^user=(?P<u>\\w+)$", "line": "owner=\\g<u>", "backrefs": true}),
        );
        assert_eq!(text, "owner=bob\n");
        // backrefs without a match: nothing, not even an append.
        unchanged(
            "a\n",
            json!({"regexp": "^nomatch(.*)", "line": "x\\1", "backrefs": true}),
        );
    }

    #[test]
    fn absent_removes_every_match() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = file_with(&dir, "keep\n# c1\nkeep2\n# c2\n");
        let params = json!({"path": f, "regexp": "^#", "state": "absent"});
        let (first, out) = converge(&LineInFile, &params);
        assert_eq!(read(&f), "keep\nkeep2\n");
        assert_eq!(get(&first.result, "found"), 2);
        assert_eq!(out.msg.as_deref(), Some("2 line(s) removed"));
        let params = json!({"path": f, "line": "keep2", "state": "absent"});
        converge(&LineInFile, &params);
        assert_eq!(read(&f), "keep\n");
        let params = json!({"path": f, "search_string": "ee", "state": "absent"});
        converge(&LineInFile, &params);
        assert_eq!(read(&f), "");
        let missing = json!({"path": path_in(&dir, "none"), "line": "x", "state": "absent"});
        assert_eq!(
            get(&plan(&LineInFile, &missing).result, "msg"),
            "file not present"
        );
    }

    #[test]
    fn search_string_create_backup_and_mode() {
        let (_, text) = edit("a.b=1\n", json!({"search_string": "a.b", "line": "a.b=2"}));
        assert_eq!(text, "a.b=2\n");
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "sub/new.conf");
        let params = json!({"path": f, "line": "x=1", "create": true, "mode": "0600"});
        let err = DynModule::plan(&LineInFile, &json!({"path": f, "line": "x"}), &mut host())
            .expect_err("missing");
        assert!(err.to_string().contains("does not exist"));
        converge(&LineInFile, &params);
        assert_eq!(read(&f), "x=1\n");
        let mode = std::fs::metadata(&f)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        let params = json!({"path": f, "line": "y=2", "backup": true, "mode": "0644"});
        let pl = plan(&LineInFile, &params);
        let out = DynModule::apply(&LineInFile, &params, pl, &mut host()).expect("apply");
        let b = get(&out.result, "backup")
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(read(&b), "x=1\n");
        assert_eq!(read(&f), "x=1\ny=2\n");
        assert!(out.msg.unwrap_or_default().contains("ownership, perms"));
    }

    #[test]
    fn rewrite_keeps_owner_group_and_mode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let f = file_with(&dir, "a\n");
        std::os::unix::fs::chown(&f, Some(65534), Some(1)).expect("chown");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o2640)).expect("chmod");
        converge(&LineInFile, &json!({"path": f, "line": "b"}));
        let m = std::fs::metadata(&f).expect("stat");
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (65534, 1, 0o2640));
        assert_eq!(read(&f), "a\nb\n");
    }

    #[test]
    fn follows_a_symlinked_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = file_with(&dir, "a\n");
        let l = path_in(&dir, "link");
        std::os::unix::fs::symlink(&f, &l).expect("symlink");
        converge(&LineInFile, &json!({"path": l, "line": "b"}));
        assert_eq!(read(&f), "a\nb\n");
        assert!(std::fs::symlink_metadata(&l).is_ok_and(|m| m.file_type().is_symlink()));
    }

    #[test]
    fn parameter_rules() {
        let mut h = host();
        for bad in [
            json!({"path": "/x", "line": "a", "insertafter": "a", "insertbefore": "b"}),
            json!({"path": "/x", "line": "a", "regexp": "a", "search_string": "b"}),
            json!({"path": "/x", "line": "a", "backrefs": true}),
            json!({"path": "/x", "state": "present"}),
            json!({"path": "/x", "state": "absent"}),
            json!({"path": "/x", "line": "a", "regexp": "("}),
        ] {
            assert!(
                matches!(
                    DynModule::plan(&LineInFile, &bad, &mut h),
                    Err(ModuleError::Params(_))
                ),
                "{bad}"
            );
        }
        assert!(LineInFile
            .check_params(&json!({"dest": "/x", "value": "a", "regex": "b"}))
            .is_ok());
    }

    #[test]
    fn expand_like_python() {
        let re = Regex::new(r"(?P<k>\w+)=(\w+)").expect("re");
        let caps = re.captures(b"key=val").expect("caps");
        assert_eq!(expand(&caps, r"\2:\1\t\g<k>\\"), b"val:key\tkey\\".to_vec());
    }

    /// `validate` gates the write: a rejected edit fails with Ansible's
    /// lineinfile/blockinfile message and leaves the file as it was; check
    /// mode (the plan alone) never runs the command.
    #[test]
    fn validate_gates_the_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = file_with(&dir, "ok\n");
        let mark = path_in(&dir, "ran");
        let mut bad = json!({"regexp": "^ok", "line": "gone"});
        bad["path"] = json!(f);
        bad["validate"] = json!(format!(
            "sh -c 'touch {mark}; if grep -q gone \"$1\"; then echo no ok >&2; exit 2; fi' check %s"
        ));
        let pl = plan(&LineInFile, &bad);
        assert!(!pl.is_empty());
        assert!(!std::path::Path::new(&mark).exists(), "plan ran validate");
        match DynModule::apply(&LineInFile, &bad, pl, &mut host()) {
            Err(ModuleError::Failed { msg, .. }) => {
                assert_eq!(msg, "failed to validate: rc:2 error:no ok\n");
            }
            other => panic!("expected a validate failure, got {other:?}"),
        }
        assert!(std::path::Path::new(&mark).exists());
        assert_eq!(read(&f), "ok\n");
        assert_eq!(
            std::fs::read_dir(dir.path())
                .map(std::iter::Iterator::count)
                .ok(),
            Some(2)
        );

        let mut good = json!({"line": "ok more"});
        good["path"] = json!(f);
        good["validate"] = json!("grep -q ok %s");
        converge(&LineInFile, &good);
        assert_eq!(read(&f), "ok\nok more\n");

        let mut no_s = json!({"line": "ok more"});
        no_s["path"] = json!(file_with(&dir, "ok\n"));
        no_s["validate"] = json!("true");
        let pl = plan(&LineInFile, &no_s);
        let err = DynModule::apply(&LineInFile, &no_s, pl, &mut host()).expect_err("no %s");
        assert_eq!(err.to_string(), "validate must contain %s: true");
    }
}
