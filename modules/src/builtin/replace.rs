//! `replace`: replace every match of a regular expression in a file.
//!
//! The plan reads the file in its one probe (following a symlink, as
//! Ansible writes the link's target), narrows the text to the section
//! between `after` and `before` when they are given, substitutes every
//! match of `regexp` (multiline: `^` and `$` match at line boundaries) with
//! `replace` (Python's template syntax: `\1`, `\g<name>`), and keeps the
//! new content; apply writes it atomically, after `backup` and `validate`.
//! Only a substitution that changes the text counts, so a pattern that
//! matches its own replacement converges.
//!
//! Differences from Ansible: patterns use Rust's `regex` syntax (no
//! look-around or backreferences inside the pattern); an empty match right
//! after another match is not replaced again (Python 3.7+ replaces it);
//! only UTF-8 (`encoding: utf-8`) files are edited.

use regex::bytes::Regex;
use serde::Deserialize;
use serde_json::json;

use crate::builtin::lineinfile::expand;
use crate::params::{de_bool, de_opt_bool, de_opt_mode, de_opt_string, Mode};
use crate::probe::WantedAttrs;
use crate::shell_quote::quote_path;
use crate::textfile::{self, Edit, Read};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

fn default_encoding() -> String {
    "utf-8".into()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `replace`: what `herd doc` shows, and what the parser takes.
pub struct ReplaceParams {
    /// The file to edit; it must exist.
    #[serde(alias = "dest", alias = "destfile", alias = "name")]
    pub path: String,
    /// The regular expression to look for, matched against the whole text with `^` and `$`
    /// matching at every line.
    pub regexp: String,
    /// What each match becomes; `\1` and `\g<name>` refer to `regexp`'s groups. Unset or
    /// empty removes the matches.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub replace: Option<String>,
    /// Only the text after the first match of this expression is edited (`.` matches newlines
    /// here).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub after: Option<String>,
    /// Only the text before the last match of this expression is edited (the first match
    /// after `after` when both are given).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub before: Option<String>,
    /// Keep a timestamped copy of the file (`FILE.PID.YYYY-MM-DD@HH:MM:SS~`) before changing
    /// it; its path is returned as `backup_file`.
    #[serde(default, deserialize_with = "de_bool")]
    pub backup: bool,
    /// A command run on the new content before it replaces the file, with `%s` standing for a
    /// temp file; the task fails if it exits non-zero.
    pub validate: Option<String>,
    /// The file's character encoding; only UTF-8 is supported.
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// User that should own the file (name or uid); unset leaves it as it is.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub owner: Option<String>,
    /// Group that should own the file (name or gid); unset leaves it as it is.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub group: Option<String>,
    /// Permissions: an octal string (`"0644"`), a YAML octal number (`0644`) or a symbolic mode
    /// (`u=rw,g=r,o=r`); unset leaves them as they are.
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

/// The `replace` module.
pub struct Replace;

fn compile(field: &str, flags: &str, re: &str) -> Result<Regex, ModuleError> {
    Regex::new(&format!("(?{flags}){re}")).map_err(|e| {
        ModuleError::Params(ParamError::Invalid {
            module: Replace::NAME,
            path: field.into(),
            reason: e.to_string(),
        })
    })
}

/// What the edit did to the text.
#[derive(Debug, PartialEq, Eq)]
enum Substituted {
    /// `after`/`before` found no section; the message says which pattern.
    NoSection(String),
    /// The new text and how many matches were replaced.
    Text(Vec<u8>, usize),
}

/// Ansible's section rule: `after` and `before` become one pattern around
/// a named group, searched with `.` matching newlines; then every match of
/// `regexp` inside that group is substituted.
fn substitute(p: &ReplaceParams, content: &[u8]) -> Result<Substituted, ModuleError> {
    let after = p.after.as_deref().filter(|s| !s.is_empty());
    let before = p.before.as_deref().filter(|s| !s.is_empty());
    let section = match (after, before) {
        (Some(a), Some(b)) => Some(format!("{a}(?P<subsection>.*?){b}")),
        (Some(a), None) => Some(format!("{a}(?P<subsection>.*)")),
        (None, Some(b)) => Some(format!("(?P<subsection>.*){b}")),
        (None, None) => None,
    };
    let (start, end) = match &section {
        None => (0, content.len()),
        Some(pattern) => {
            let field = if after.is_some() { "after" } else { "before" };
            let re = compile(field, "s", pattern)?;
            let sub = re
                .captures(content)
                .and_then(|c| c.name("subsection"))
                .map(|m| (m.start(), m.end()));
            match sub {
                Some(range) => range,
                None => {
                    return Ok(Substituted::NoSection(format!(
                        "Pattern for before/after params did not match the given file: {pattern}"
                    )))
                }
            }
        }
    };
    let re = compile("regexp", "m", &p.regexp)?;
    let template = p.replace.as_deref().unwrap_or("");
    let part = &content[start..end];
    let mut count = 0usize;
    let replaced = re.replace_all(part, |caps: &regex::bytes::Captures<'_>| {
        count += 1;
        expand(caps, template)
    });
    let mut out = Vec::with_capacity(content.len());
    out.extend_from_slice(&content[..start]);
    out.extend_from_slice(&replaced);
    out.extend_from_slice(&content[end..]);
    Ok(Substituted::Text(out, count))
}

impl Replace {
    fn want(p: &ReplaceParams) -> WantedAttrs {
        WantedAttrs::ignoring_preserve(&p.owner, &p.group, &p.mode)
    }
}

fn check_encoding(p: &ReplaceParams) -> Result<(), ModuleError> {
    let e = p.encoding.to_ascii_lowercase().replace(['-', '_'], "");
    if e == "utf8" {
        return Ok(());
    }
    Err(ModuleError::Params(ParamError::Invalid {
        module: Replace::NAME,
        path: "encoding".into(),
        reason: "only utf-8 files are supported".into(),
    }))
}

impl Module for Replace {
    const NAME: &'static str = "replace";
    const DOC_SHORT: &'static str =
        "Replace every match of a regular expression in a file (optionally between two patterns).";
    const DOC_LONG: &'static str = r##"The whole file is searched (`^` and `$` match at each line), every match is replaced, and the file is written atomically only when its text changes. `after` and `before` narrow the edit to one section of the file; when they match nothing the task reports ok with a message, as Ansible does. Write `regexp` so that it does not match its own replacement, or every run changes the file again."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Point the app at the new database
  replace:
    path: /etc/app/app.conf
    regexp: '^(db_host\s*=\s*).*$'
    replace: '\g<1>db-2.internal'
    backup: true
- name: Comment out the old hosts, only in the cluster section
  replace:
    path: /etc/hosts
    after: '# BEGIN cluster'
    before: '# END cluster'
    regexp: '^(10\.0\.0\.\d+ old-.*)$'
    replace: '# \1'
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        (
            "msg",
            "`N replacements made`, or empty when nothing changed",
        ),
        ("rc", "0 (Ansible returns it too)"),
        ("backup_file", "the backup's path, with `backup: true`"),
    ];
    type Params = ReplaceParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        check_encoding(p)?;
        let want = Self::want(p);
        let setup = format!("p={}", quote_path(&p.path));
        let dest = textfile::probe(host, &setup, true, &want, Read::All, "")?;
        if dest.is_dir() {
            return Err(ModuleError::Failed {
                msg: format!("Path {} is a directory !", p.path),
                result: [("rc".to_string(), json!(256))].into_iter().collect(),
            });
        }
        if !dest.exists() {
            return Err(ModuleError::Failed {
                msg: format!("Path {} does not exist !", p.path),
                result: [("rc".to_string(), json!(257))].into_iter().collect(),
            });
        }
        let mut plan = Plan::default();
        plan.result.insert("rc".into(), json!(0));
        let before = dest.content.clone().unwrap_or_default();
        if std::str::from_utf8(&before).is_err() {
            return Err(ModuleError::failed(format!(
                "{} is not valid UTF-8 text",
                p.path
            )));
        }
        let (after, count) = match substitute(p, &before)? {
            Substituted::NoSection(msg) => {
                plan.result.insert("msg".into(), json!(msg));
                return Ok(plan);
            }
            Substituted::Text(after, count) => (after, count),
        };
        let msg = if count > 0 && after != before {
            plan.changes
                .push(format!("{count} replacements in {}", dest.path));
            if let Some(d) = textfile::diff(&dest.path, &before, &after) {
                plan.diffs.push(d);
            }
            format!("{count} replacements made")
        } else {
            String::new()
        };
        let attr_changes = match &dest.stat {
            Some(st) => want.diff(&dest.path, st).0,
            None => Vec::new(),
        };
        let msg = match (msg.is_empty(), attr_changes.is_empty()) {
            (true, false) => "ownership, perms or SE linux context changed".to_string(),
            (false, false) => format!("{msg} and ownership, perms or SE linux context changed"),
            (_, true) => msg,
        };
        plan.changes.extend(attr_changes);
        plan.result.insert("msg".into(), json!(msg));
        if !plan.is_empty() {
            let mode = textfile::resolve_mode(&want, &dest);
            let content = (before != after).then_some(&after[..]);
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
        Edit::apply_planned(
            Self::NAME,
            &plan,
            host,
            &Self::want(p),
            p.backup,
            p.validate.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{converge, get, host, path_in, plan, FakeHost};
    use crate::DynModule;
    use serde_json::Value;

    fn read(p: &str) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    /// Writes `text`, converges `params` on it, returns the first plan and the file.
    fn run(text: &str, mut params: Value) -> (Plan, Outcome, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        std::fs::write(&f, text).expect("write");
        params["path"] = json!(f);
        // Check mode is the plan alone: it names the change, the file stays.
        let pl = plan(&Replace, &params);
        assert!(!pl.is_empty());
        assert_eq!(read(&f), text);
        let (first, out) = converge(&Replace, &params);
        (first, out, read(&f))
    }

    #[test]
    fn replaces_every_match_with_groups() {
        let (first, out, text) = run(
            "db_host = old\nother = 1\ndb_host=old2\n",
            json!({"regexp": r"^(db_host\s*=\s*).*$", "replace": r"\g<1>new"}),
        );
        assert_eq!(text, "db_host = new\nother = 1\ndb_host=new\n");
        assert_eq!(out.msg.as_deref(), Some("2 replacements made"));
        assert_eq!(first.diffs.len(), 1);
        assert!(out.changed);
        // Removing matches: `replace` unset.
        let (_, _, text) = run("a1b22c\n", json!({"regexp": r"\d+"}));
        assert_eq!(text, "abc\n");
    }

    #[test]
    fn after_and_before_narrow_the_section() {
        let start = "x=1\n# BEGIN\nx=1\nx=1\n# END\nx=1\n";
        let (_, _, text) = run(
            start,
            json!({"after": "# BEGIN", "before": "# END", "regexp": "^x=1$", "replace": "x=2"}),
        );
        assert_eq!(text, "x=1\n# BEGIN\nx=2\nx=2\n# END\nx=1\n");
        let (_, _, text) = run(
            start,
            json!({"after": "# END", "regexp": "x=1", "replace": "y"}),
        );
        assert_eq!(text, "x=1\n# BEGIN\nx=1\nx=1\n# END\ny\n");
        let (_, _, text) = run(
            start,
            json!({"before": "# BEGIN", "regexp": "x", "replace": "z"}),
        );
        assert_eq!(text, "z=1\n# BEGIN\nx=1\nx=1\n# END\nx=1\n");
        // No section: ok, with Ansible's message, and nothing to do.
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        std::fs::write(&f, start).expect("write");
        let pl = plan(
            &Replace,
            &json!({"path": f, "after": "nope", "regexp": "x", "replace": "z"}),
        );
        assert!(pl.is_empty());
        assert!(get(&pl.result, "msg")
            .as_str()
            .is_some_and(|m| m.starts_with("Pattern for before/after params did not match")));
    }

    #[test]
    fn a_replacement_that_changes_nothing_is_ok_and_attrs_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        std::fs::write(&f, "a=1\n").expect("write");
        let pl = plan(
            &Replace,
            &json!({"dest": f, "regexp": "a=1", "replace": "a=1"}),
        );
        assert!(pl.is_empty());
        assert_eq!(get(&pl.result, "msg"), "");
        let (_, out) = converge(
            &Replace,
            &json!({"path": f, "regexp": "a=1", "replace": "a=1", "mode": "0600"}),
        );
        assert_eq!(
            out.msg.as_deref(),
            Some("ownership, perms or SE linux context changed")
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&f).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
    }

    #[test]
    fn backup_validate_and_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        std::fs::write(&f, "keep old\n").expect("write");
        let params = json!({"path": f, "regexp": "old", "replace": "new", "backup": true,
                            "validate": "grep -q new %s"});
        let pl = plan(&Replace, &params);
        let out = DynModule::apply(&Replace, &params, pl, &mut host()).expect("apply");
        let b = get(&out.result, "backup_file").as_str().unwrap_or_default();
        assert_eq!(read(b), "keep old\n");
        assert_eq!(read(&f), "keep new\n");

        let bad =
            json!({"path": f, "regexp": "new", "replace": "bad", "validate": "grep -q new %s"});
        let pl = plan(&Replace, &bad);
        let err = DynModule::apply(&Replace, &bad, pl, &mut host()).expect_err("rejected");
        assert!(
            err.to_string().starts_with("failed to validate: rc:1"),
            "{err}"
        );
        assert_eq!(read(&f), "keep new\n");

        let missing = json!({"path": path_in(&dir, "none"), "regexp": "x"});
        let err = DynModule::plan(&Replace, &missing, &mut host()).expect_err("missing");
        assert!(err.to_string().ends_with("does not exist !"), "{err}");
        let is_dir = json!({"path": dir.path(), "regexp": "x"});
        let err = DynModule::plan(&Replace, &is_dir, &mut host()).expect_err("dir");
        assert!(err.to_string().ends_with("is a directory !"), "{err}");
        let bad_re = json!({"path": f, "regexp": "("});
        let err = DynModule::plan(&Replace, &bad_re, &mut host()).expect_err("regex");
        assert!(matches!(err, ModuleError::Params(ref e) if e.field() == Some("regexp")));
        let enc = json!({"path": f, "regexp": "x", "encoding": "latin-1"});
        let err = DynModule::plan(&Replace, &enc, &mut host()).expect_err("encoding");
        assert!(matches!(err, ModuleError::Params(ref e) if e.field() == Some("encoding")));
        let unknown = Replace.check_params(&json!({"path": f, "regexp": "x", "follow": true}));
        assert!(matches!(unknown, Err(ParamError::Unknown { ref field, .. }) if field == "follow"));
    }

    /// On a fake host: one probe to plan, one write to apply, and the
    /// write goes to the file the symlink points at.
    #[test]
    fn plans_in_one_round_trip_and_writes_the_link_target() {
        let mut h = FakeHost::new().answer(
            crate::testing::Match::contains("EFF"),
            0,
            "EFF /etc/app.conf\nRP /srv/app.conf\nD 81a4 644 0 0 root root 4 1 1 1 0 0 0\nPD yes\n--herd-content--\nv=1\n",
            "",
        );
        let params = json!({"path": "/etc/app.conf", "regexp": "v=1", "replace": "v=2"});
        let pl = DynModule::plan(&Replace, &params, &mut h).expect("plan");
        assert_eq!(h.scripts.len(), 1);
        assert_eq!(pl.changes, ["1 replacements in /etc/app.conf"]);
        let out = DynModule::apply(&Replace, &params, pl, &mut h).expect("apply");
        assert!(out.changed);
        assert_eq!(h.uploads.len(), 1);
        assert_eq!(h.uploads[0].path, "/srv/app.conf");
        assert_eq!(h.uploads[0].content, "v=2\n");
    }
}
