//! `ini_file` (community.general): one option, or a whole section, of an
//! INI-style file.
//!
//! The plan reads the file in its one probe and edits its lines with the
//! collection's rules, step for step: the section is found (the first one
//! of that name whose lines satisfy `section_has_values`); with
//! `state: present` the option's lines whose value is wanted are rewritten
//! in place, the other lines of the option take the remaining values or go
//! (`exclusive`), and values still missing are added after the section's
//! last line that is neither blank nor a comment; a missing section is
//! appended with its options. A commented-out `# option = value` counts as
//! the option unless `modify_inactive_option: false`. `state: absent`
//! removes the option's active lines (only those with one of `values` when
//! not `exclusive`), or the whole section without `option`. A file not
//! ending in a newline gets one (a change, message `OK`). Apply writes the
//! planned text atomically, after a backup when asked.
//!
//! Differences from the collection: owner, group and mode changes are
//! planned like the content, so check mode reports them (the collection
//! sets them only outside check mode and reports such a task unchanged in
//! check mode). The registered result has no `diff` (`--diff` shows the
//! planned change). A file that is not UTF-8 fails the task.

use regex::Regex;
use serde::Deserialize;
use serde_json::json;

use crate::params::{de_bool, de_opt_bool, de_opt_mode, de_opt_string, Mode};
use crate::probe::WantedAttrs;
use crate::shell_quote::quote_path;
use crate::textfile::{self, Edit, Read};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum IniState {
    #[default]
    /// The option (or section) is in the file.
    Present,
    /// The option (or section) is not in the file.
    Absent,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// One condition of `section_has_values`.
pub struct SectionHasValue {
    /// The section must have this option.
    pub option: String,
    /// ... with this value.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub value: Option<String>,
    /// ... with one of these values.
    #[serde(default, deserialize_with = "de_opt_values")]
    #[schemars(with = "Option<crate::doc::shapes::StringOrList>")]
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `ini_file`: what `herd doc` shows, and what the parser takes.
pub struct IniFileParams {
    /// The INI file.
    #[serde(alias = "dest")]
    pub path: String,
    /// The section; omitted, the option is set before the first section.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub section: Option<String>,
    /// Among sections of the same name, the first whose options have these values is used;
    /// a new section gets them.
    pub section_has_values: Option<Vec<SectionHasValue>>,
    /// The option; omitted, `state: absent` removes the whole section.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub option: Option<String>,
    /// The option's value (the same as `values: [value]`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub value: Option<String>,
    /// The option's values, one line each.
    #[serde(default, deserialize_with = "de_opt_values")]
    #[schemars(with = "Option<crate::doc::shapes::StringOrList>")]
    pub values: Option<Vec<String>>,
    /// Keep a timestamped copy of the file before changing it (`backup_file`).
    #[serde(default, deserialize_with = "de_bool")]
    pub backup: bool,
    /// `present` or `absent`.
    #[serde(default)]
    pub state: IniState,
    /// Other lines of the option than the wanted values are removed (`present`), or every line
    /// of the option is (`absent`).
    #[serde(default = "crate::params::yes", deserialize_with = "de_bool")]
    pub exclusive: bool,
    /// Write `option=value` instead of `option = value`.
    #[serde(default, deserialize_with = "de_bool")]
    pub no_extra_spaces: bool,
    /// A line that differs only by the spaces around `=` is left alone.
    #[serde(default, deserialize_with = "de_bool")]
    pub ignore_spaces: bool,
    /// Create the file when it is missing.
    #[serde(default = "crate::params::yes", deserialize_with = "de_bool")]
    pub create: bool,
    /// Options may have no value (a bare `option` line).
    #[serde(default, deserialize_with = "de_bool")]
    pub allow_no_value: bool,
    /// A commented-out line of the option is replaced by the option.
    #[serde(default = "crate::params::yes", deserialize_with = "de_bool")]
    pub modify_inactive_option: bool,
    /// Edit the target of a symlink `path` instead of replacing the link.
    #[serde(default, deserialize_with = "de_bool")]
    pub follow: bool,
    /// User that should own the file (name or uid).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub owner: Option<String>,
    /// Group that should own the file (name or gid).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub group: Option<String>,
    /// Permissions, octal or symbolic.
    #[serde(default, deserialize_with = "de_opt_mode")]
    pub mode: Option<Mode>,
    /// Accepted and ignored: files are always written atomically.
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

/// The `ini_file` module.
pub struct IniFile;

/// A list of strings as Ansible's `list` type reads it: items kept as
/// they are (an empty value is a value), a string split at commas.
fn de_opt_values<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let item = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(if *b { "True" } else { "False" }.to_string()),
        _ => Err(serde::de::Error::custom("expected a list of strings")),
    };
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s.split(',').map(str::to_string).collect())),
        serde_json::Value::Array(a) => a.iter().map(item).collect::<Result<_, _>>().map(Some),
        other => item(&other).map(|v| Some(vec![v])),
    }
}

/// The section name the collection puts around the lines before the first
/// section, so that they are edited like a section.
const FAKE_SECTION: &str = "ad01e11446efb704fcdbdb21f2c43757423d91c5";

/// A line without its one trailing newline: the collection's patterns end
/// in Python's `$`, which matches before a final newline.
fn body(line: &str) -> &str {
    line.strip_suffix('\n').unwrap_or(line)
}

/// Matches lines of one option: active ones (`option = value`), and, with
/// `any`, commented-out ones too (`# option = value`, `;option`).
struct OptionMatcher {
    any: Regex,
    active: Regex,
}

/// A matched option line: whether it is commented out, and its value.
struct OptionLine {
    commented: bool,
    value: String,
}

impl OptionMatcher {
    fn new(option: &str) -> Result<OptionMatcher, ModuleError> {
        let o = regex::escape(option);
        let compile = |p: String| {
            Regex::new(&p).map_err(|e| {
                ModuleError::Params(ParamError::Invalid {
                    module: IniFile::NAME,
                    path: "option".into(),
                    reason: e.to_string(),
                })
            })
        };
        Ok(OptionMatcher {
            any: compile(format!(
                r"^[ \t]*([#;]?)[ \t]*(?:{o})[ \t]*(?:=|$)[ \t]*(.*)"
            ))?,
            active: compile(format!(r"^()[ \t]*(?:{o})[ \t]*(?:=|$)[ \t]*(.*)"))?,
        })
    }

    fn find(&self, line: &str, inactive_too: bool) -> Option<OptionLine> {
        let re = if inactive_too {
            &self.any
        } else {
            &self.active
        };
        let c = re.captures(body(line))?;
        Some(OptionLine {
            commented: c.get(1).is_some_and(|m| !m.as_str().is_empty()),
            value: c.get(2).map_or("", |m| m.as_str()).to_string(),
        })
    }
}

/// What `do_ini` needs besides the file: the parameters, normalized.
struct Request {
    section: Option<String>,
    /// `section_has_values` as (option, values, matcher).
    has_values: Vec<(String, Vec<String>, OptionMatcher)>,
    option: Option<String>,
    values: Vec<String>,
    state: IniState,
    exclusive: bool,
    no_extra_spaces: bool,
    ignore_spaces: bool,
    allow_no_value: bool,
    modify_inactive_option: bool,
}

impl Request {
    fn assignment(&self, option: &str, value: &str) -> String {
        if self.no_extra_spaces {
            format!("{option}={value}\n")
        } else {
            format!("{option} = {value}\n")
        }
    }
}

/// Whether a section's lines satisfy every `section_has_values` condition
/// (commented-out lines count, as in the collection).
fn has_values(conds: &[(String, Vec<String>, OptionMatcher)], lines: &[String]) -> bool {
    conds.iter().all(|(_, values, m)| {
        lines.iter().any(|l| {
            m.find(l, true)
                .is_some_and(|o| values.is_empty() || values.contains(&o.value))
        })
    })
}

/// The state of one edit: the section's lines and which were rewritten,
/// the values still to place, whether anything changed, and the message.
struct Editor<'a> {
    r: &'a Request,
    matcher: Option<OptionMatcher>,
    option: String,
    values: Vec<String>,
    lines: Vec<String>,
    touched: Vec<bool>,
    changed: bool,
    msg: &'static str,
    no_value_present: bool,
}

impl Editor<'_> {
    /// The option's line at `index`, matched as the task asks (commented
    /// out ones too unless `modify_inactive_option: false`).
    fn matches(&self, index: usize) -> Option<OptionLine> {
        self.matcher
            .as_ref()?
            .find(&self.lines[index], self.r.modify_inactive_option)
    }

    /// Rewrite one line; with `ignore_spaces` an active line whose value is
    /// already right is kept as it is spelled.
    fn update(&mut self, index: usize, newline: String) {
        let mut option_changed = None;
        if self.r.ignore_spaces {
            if let Some(m) = &self.matcher {
                if let Some(old) = m.find(&self.lines[index], true) {
                    if !old.commented {
                        let new = m.find(&newline, true).map(|n| n.value).unwrap_or_default();
                        option_changed = Some(old.value != new);
                    }
                }
            }
        }
        if option_changed.unwrap_or(self.lines[index] != newline) {
            self.lines[index] = newline;
            self.changed = true;
            self.msg = "option changed";
        }
        self.touched[index] = true;
    }

    /// `present`: lines with a wanted value are respelled in place; a bare
    /// option is kept for `allow_no_value`.
    fn keep_wanted(&mut self) {
        for index in 0..self.lines.len() {
            let Some(m) = self.matches(index) else {
                continue;
            };
            if !self.values.is_empty() && self.values.contains(&m.value) {
                let newline = if m.value.is_empty() && self.r.allow_no_value {
                    self.no_value_present = true;
                    format!("{}\n", self.option)
                } else {
                    self.r.assignment(&self.option, &m.value)
                };
                self.update(index, newline);
                if let Some(pos) = self.values.iter().position(|v| *v == m.value) {
                    self.values.remove(pos);
                }
            } else if self.values.is_empty() && self.r.allow_no_value {
                let newline = format!("{}\n", self.option);
                self.update(index, newline);
                self.no_value_present = true;
                break;
            }
        }
    }

    /// `present` and `exclusive`: other lines of the option take the
    /// remaining values, and the rest of them go.
    fn replace_others(&mut self) {
        if !self.values.is_empty() {
            for index in 0..self.lines.len() {
                if !self.touched[index] && self.matches(index).is_some() {
                    let v = self.values.remove(0);
                    let newline = self.r.assignment(&self.option, &v);
                    self.update(index, newline);
                    if self.values.is_empty() {
                        break;
                    }
                }
            }
        }
        // The section's header (index 0) is never an option line.
        for index in (1..self.lines.len()).rev() {
            if !self.touched[index] && self.matches(index).is_some() {
                self.lines.remove(index);
                self.touched.remove(index);
                self.changed = true;
                self.msg = "option changed";
            }
        }
    }

    /// `present`: values still missing go after the section's last line
    /// that is neither blank nor a comment.
    fn insert_missing(&mut self) {
        let blank_or_comment = |l: &str| {
            let t = body(l).trim_start_matches([' ', '\t']);
            t.is_empty() || t.starts_with(['#', ';'])
        };
        let has_option = self.r.option.is_some();
        for index in (1..=self.lines.len()).rev() {
            if blank_or_comment(&self.lines[index - 1]) {
                continue;
            }
            if has_option && !self.values.is_empty() {
                for v in self.values.iter().rev() {
                    self.lines.insert(index, self.r.assignment(&self.option, v));
                }
                self.msg = "option added";
                self.changed = true;
            } else if has_option && self.r.allow_no_value && !self.no_value_present {
                self.lines.insert(index, format!("{}\n", self.option));
                self.msg = "option added";
                self.changed = true;
            }
            break;
        }
    }

    /// `absent`: the option's active lines (with one of `values` unless
    /// `exclusive`) go, or the whole section without `option`.
    fn remove(&mut self) {
        let Some(m) = &self.matcher else {
            if !self.lines.is_empty() {
                self.lines.clear();
                self.msg = "section removed";
                self.changed = true;
            }
            return;
        };
        if !self.r.exclusive && self.values.is_empty() {
            return;
        }
        let kept: Vec<String> = self
            .lines
            .iter()
            .filter(|l| match m.find(l, false) {
                None => true,
                Some(o) => !self.r.exclusive && !self.values.contains(&o.value),
            })
            .cloned()
            .collect();
        if kept != self.lines {
            self.changed = true;
            self.msg = "option changed";
            self.lines = kept;
        }
    }

    /// A new section at the end, with the `section_has_values` options and
    /// the option's values.
    fn append_section(&mut self, out: &mut Vec<String>, section: &str) {
        let r = self.r;
        out.push(format!("[{section}]\n"));
        self.msg = "section and option added";
        for (cond_option, cond_values, _) in &r.has_values {
            if Some(cond_option) != r.option.as_ref() {
                if !cond_values.is_empty() {
                    out.extend(cond_values.iter().map(|v| r.assignment(cond_option, v)));
                } else if r.allow_no_value {
                    out.push(format!("{cond_option}\n"));
                }
            } else if !r.exclusive {
                for v in cond_values {
                    if !self.values.contains(v) {
                        self.values.push(v.clone());
                    }
                }
            }
        }
        if r.option.is_some() && !self.values.is_empty() {
            out.extend(self.values.iter().map(|v| r.assignment(&self.option, v)));
        } else if r.option.is_some() && r.allow_no_value {
            out.push(format!("{}\n", self.option));
        } else {
            self.msg = "only section added";
        }
        self.changed = true;
    }
}

/// Where the section is: the first one of its name whose lines satisfy
/// `section_has_values`, as (start, end, found).
fn find_section(
    lines: &[String],
    section: &str,
    r: &Request,
) -> Result<(usize, usize, bool), ModuleError> {
    let section_re = Regex::new(&format!(r"^\[\s*{}\s*\]", regex::escape(section.trim())))
        .map_err(|e| ModuleError::failed(format!("section: {e}")))?;
    let mut within = false;
    let (mut start, mut end) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        if within && line.starts_with('[') {
            if has_values(&r.has_values, &lines[start..i]) {
                end = i;
                break;
            }
            within = false;
            start = 0;
            end = 0;
        }
        if section_re.is_match(line) {
            within = true;
            start = i;
        }
    }
    Ok((start, end, within))
}

/// The edit of a file's text: the new text, whether it changed, and the
/// collection's message.
fn do_ini(text: &str, r: &Request) -> Result<(String, bool, &'static str), ModuleError> {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let mut changed = false;
    if lines.is_empty() {
        lines.push("\n".into());
    }
    if let Some(last) = lines.last_mut() {
        if !last.ends_with('\n') {
            last.push('\n');
            changed = true;
        }
    }
    // Made-up first and last lines, so the lines before the first section
    // are edited like a section and every section has an end.
    lines.insert(0, format!("[{FAKE_SECTION}]"));
    lines.push("[".into());
    let section = match r.section.as_deref() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => FAKE_SECTION.to_string(),
    };
    let (start, end, within) = find_section(&lines, &section, r)?;
    let after_lines = lines.split_off(end);
    let section_lines = lines.split_off(start);
    let mut out = lines;
    let mut ed = Editor {
        r,
        matcher: r.option.as_deref().map(OptionMatcher::new).transpose()?,
        option: r.option.clone().unwrap_or_default(),
        values: r.values.clone(),
        touched: vec![false; section_lines.len()],
        lines: section_lines,
        changed,
        msg: "OK",
        no_value_present: false,
    };
    let present = r.state == IniState::Present;
    if present && r.option.is_some() {
        ed.keep_wanted();
    }
    if present && r.exclusive && !r.allow_no_value {
        ed.replace_others();
    }
    if present {
        ed.insert_missing();
    } else {
        ed.remove();
    }
    out.append(&mut ed.lines);
    out.extend(after_lines);
    // Drop the made-up lines (as the collection does, by position: with
    // the lines before the first section removed, that is the first real
    // line).
    if !out.is_empty() {
        out.remove(0);
    }
    out.pop();
    if !within && present {
        ed.append_section(&mut out, &section);
    }
    Ok((out.concat(), ed.changed, ed.msg))
}

fn invalid(path: &str, reason: &str) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: IniFile::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

impl IniFile {
    fn want(p: &IniFileParams) -> WantedAttrs {
        WantedAttrs::ignoring_preserve(&p.owner, &p.group, &p.mode)
    }

    fn request(p: &IniFileParams) -> Result<Request, ModuleError> {
        if p.value.is_some() && p.values.is_some() {
            return Err(invalid("values", "mutually exclusive with value"));
        }
        if p.state == IniState::Present
            && !p.allow_no_value
            && p.value.is_none()
            && p.values.as_ref().is_none_or(Vec::is_empty)
        {
            return Err(ModuleError::failed(
                "Parameter 'value(s)' must be defined if state=present and allow_no_value=False.",
            ));
        }
        let raw = match (&p.value, &p.values) {
            (Some(v), _) => vec![v.clone()],
            (None, Some(vs)) => vs.clone(),
            (None, None) => Vec::new(),
        };
        let mut values: Vec<String> = Vec::new();
        for v in raw {
            if !values.contains(&v) {
                values.push(v);
            }
        }
        let mut has_values = Vec::new();
        for c in p.section_has_values.iter().flatten() {
            if c.value.is_some() && c.values.is_some() {
                return Err(invalid(
                    "section_has_values",
                    "value and values are mutually exclusive",
                ));
            }
            let vs = match (&c.value, &c.values) {
                (Some(v), _) => vec![v.clone()],
                (None, Some(vs)) => vs.clone(),
                (None, None) => Vec::new(),
            };
            has_values.push((c.option.clone(), vs, OptionMatcher::new(&c.option)?));
        }
        Ok(Request {
            section: p.section.clone(),
            has_values,
            option: p.option.clone(),
            values,
            state: p.state,
            exclusive: p.exclusive,
            no_extra_spaces: p.no_extra_spaces,
            ignore_spaces: p.ignore_spaces,
            allow_no_value: p.allow_no_value,
            modify_inactive_option: p.modify_inactive_option,
        })
    }
}

impl Module for IniFile {
    const NAME: &'static str = "ini_file";
    const DOC_SHORT: &'static str = "Set, or remove, an option or a section of an INI file.";
    const DOC_LONG: &'static str = r##"community.general's `ini_file`, with its editing rules: a missing section is appended, a missing option goes after the section's last option, a commented-out `# option = value` is replaced unless `modify_inactive_option: false`, and other lines of the option are removed unless `exclusive: false`. The file is written atomically and only when it changes."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Two workers
  community.general.ini_file:
    path: /etc/app/app.ini
    section: server
    option: workers
    value: "2"
    mode: "0644"
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        (
            "msg",
            "`OK`, `option changed`, `option added`, `section and option added`, `only section added`, `section removed`",
        ),
        ("path", "The file, as given."),
        (
            "state, mode, owner, group, uid, gid, size",
            "The file's attributes (after the change), as Ansible adds them to a result with `path`.",
        ),
        ("backup_file", "The backup's path, when one was made."),
    ];
    type Params = IniFileParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let req = Self::request(p)?;
        let want = Self::want(p);
        let setup = format!("p={}", quote_path(&p.path));
        let dest = textfile::probe(host, &setup, p.follow, &want, Read::All, "")?;
        if dest.is_dir() {
            return Err(ModuleError::failed(format!(
                "Path {} is a directory !",
                p.path
            )));
        }
        if !dest.exists() && !p.create {
            return Err(ModuleError::Failed {
                msg: format!("Destination {} does not exist!", dest.write_path),
                result: [("rc".to_string(), json!(257))].into_iter().collect(),
            });
        }
        let raw = dest.content.clone().unwrap_or_default();
        let raw = raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&raw);
        let before = std::str::from_utf8(raw)
            .map_err(|_| ModuleError::failed(format!("{} is not UTF-8 text", p.path)))?;
        // Read as Python's text mode reads it: `\r\n` and `\r` end lines as `\n`.
        let before = before.replace("\r\n", "\n").replace('\r', "\n");
        let (after, content_changed, msg) = do_ini(&before, &req)?;
        // The file's attributes, as Ansible adds them to a result with `path`.
        let mut plan = Plan {
            // (nothing about a file that does not exist, not even `state`).
            result: match &dest.stat {
                Some(st) => crate::probe::file_result("path", &p.path, Some(st)),
                None => [("path".to_string(), json!(p.path))].into_iter().collect(),
            },
            ..Plan::default()
        };
        plan.result.insert("msg".into(), json!(msg));
        if content_changed {
            plan.changes.push(format!("{msg} in {}", dest.path));
            if let Some(d) = textfile::diff(&dest.path, before.as_bytes(), after.as_bytes()) {
                plan.diffs.push(d);
            }
        }
        // Attributes are set only on a file that exists or is written.
        if dest.exists() || content_changed {
            if let Some(st) = &dest.stat {
                plan.changes.extend(want.diff(&dest.path, st).0);
            } else if want.owner.is_some() || want.group.is_some() {
                plan.changes.push(format!("owner/group of {}", dest.path));
            }
        }
        if !plan.is_empty() {
            let mode = textfile::resolve_mode(&want, &dest);
            let content = content_changed.then_some(after.as_bytes());
            let size = match content {
                Some(c) => c.len() as u64,
                None => dest.stat.as_ref().map_or(0, |st| st.size),
            };
            let mut written = textfile::written_result("path", &dest, &want, mode, size);
            written.insert("path".into(), json!(p.path));
            written.insert("msg".into(), json!(msg));
            let mut state = Edit::new(&dest, content, mode).to_state();
            if let Some(o) = state.as_object_mut() {
                o.insert("written".into(), json!(written));
            }
            plan.state = state;
        }
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        // The result is the written file's attributes, planned with the edit.
        let mut plan = plan;
        if let Some(w) = plan.state.get("written").and_then(|w| w.as_object()) {
            plan.result = w.clone();
        }
        Edit::apply_planned(Self::NAME, &plan, host, &Self::want(p), p.backup, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{converge, get, host, path_in, plan};
    use crate::DynModule;
    use serde_json::Value;

    fn req(v: Value) -> Request {
        let p: IniFileParams = crate::module::parse_params("ini_file", &v).expect("params parse");
        IniFile::request(&p).expect("request")
    }

    fn edit(text: &str, v: Value) -> (String, bool, &'static str) {
        let mut v = v;
        v["path"] = json!("/x");
        do_ini(text, &req(v)).expect("edit")
    }

    #[test]
    fn new_file_gets_a_blank_first_line_as_in_the_collection() {
        assert_eq!(
            edit("", json!({"section": "s", "option": "a", "value": "1"})),
            ("\n[s]\na = 1\n".into(), true, "section and option added")
        );
        assert_eq!(
            edit("", json!({"option": "a", "value": "1"})),
            ("a = 1\n\n".into(), true, "option added")
        );
    }

    #[test]
    fn options_are_changed_in_place_added_and_commented_ones_reused() {
        let text = "[s]\na = 1\n\n[t]\nb=2\n";
        assert_eq!(
            edit(text, json!({"section": "s", "option": "a", "value": "1"})),
            (text.into(), false, "OK")
        );
        assert_eq!(
            edit(text, json!({"section": "s", "option": "a", "value": "2"})).0,
            "[s]\na = 2\n\n[t]\nb=2\n"
        );
        assert_eq!(
            edit(
                text,
                json!({"section": "s", "option": "c", "value": "3", "no_extra_spaces": true})
            ),
            ("[s]\na = 1\nc=3\n\n[t]\nb=2\n".into(), true, "option added")
        );
        let commented = "[s]\n# a = 0\nx = 1\n";
        assert_eq!(
            edit(
                commented,
                json!({"section": "s", "option": "a", "value": "5"})
            )
            .0,
            "[s]\na = 5\nx = 1\n"
        );
        assert_eq!(
            edit(commented, json!({"section": "s", "option": "a", "value": "5", "modify_inactive_option": false})).0,
            "[s]\n# a = 0\nx = 1\na = 5\n"
        );
        // ignore_spaces keeps `b=2` as spelled.
        assert_eq!(
            edit(
                text,
                json!({"section": "t", "option": "b", "value": "2", "ignore_spaces": true})
            ),
            (text.into(), false, "OK")
        );
        assert_eq!(
            edit(text, json!({"section": "t", "option": "b", "value": "2"})),
            ("[s]\na = 1\n\n[t]\nb = 2\n".into(), true, "option changed")
        );
    }

    #[test]
    fn values_exclusive_and_absent() {
        let text = "[s]\nv = 1\nv = 2\nv = 3\n";
        assert_eq!(
            edit(
                text,
                json!({"section": "s", "option": "v", "values": ["3", "4"]})
            )
            .0,
            "[s]\nv = 4\nv = 3\n"
        );
        assert_eq!(
            edit(
                text,
                json!({"section": "s", "option": "v", "values": ["4"], "exclusive": false})
            )
            .0,
            "[s]\nv = 1\nv = 2\nv = 3\nv = 4\n"
        );
        assert_eq!(
            edit(
                text,
                json!({"section": "s", "option": "v", "state": "absent"})
            ),
            ("[s]\n".into(), true, "option changed")
        );
        assert_eq!(
            edit(text, json!({"section": "s", "option": "v", "values": ["2"], "state": "absent", "exclusive": false})).0,
            "[s]\nv = 1\nv = 3\n"
        );
        assert_eq!(
            edit(
                "[a]\nx = 1\n[s]\ny = 2\n",
                json!({"section": "s", "state": "absent"})
            ),
            ("[a]\nx = 1\n".into(), true, "section removed")
        );
        assert_eq!(
            edit(
                "[a]\n",
                json!({"section": "s", "option": "z", "state": "absent"})
            ),
            ("[a]\n".into(), false, "OK")
        );
    }

    #[test]
    fn no_value_options_section_has_values_and_missing_newline() {
        assert_eq!(
            edit(
                "[s]\n",
                json!({"section": "s", "option": "flag", "allow_no_value": true})
            ),
            ("[s]\nflag\n".into(), true, "option added")
        );
        assert_eq!(
            edit(
                "[s]\nflag\n",
                json!({"section": "s", "option": "flag", "allow_no_value": true})
            ),
            ("[s]\nflag\n".into(), false, "OK")
        );
        assert_eq!(
            edit(
                "[s]\na = 1",
                json!({"section": "s", "option": "a", "value": "1"})
            ),
            ("[s]\na = 1\n".into(), true, "OK")
        );
        let two = "[u]\nname = a\nx = 1\n[u]\nname = b\nx = 1\n";
        assert_eq!(
            edit(
                two,
                json!({"section": "u", "option": "x", "value": "2",
                "section_has_values": [{"option": "name", "value": "b"}]})
            )
            .0,
            "[u]\nname = a\nx = 1\n[u]\nname = b\nx = 2\n"
        );
        assert_eq!(
            edit(
                two,
                json!({"section": "u", "option": "x", "value": "2",
                "section_has_values": [{"option": "name", "value": "c"}]})
            )
            .0,
            format!("{two}[u]\nname = c\nx = 2\n")
        );
    }

    /// An empty value is a value (`a = `), as in Ansible's list type; and
    /// `\r\n` line ends are read as `\n`, as Python's text mode reads them.
    #[test]
    fn empty_values_and_crlf_files() {
        assert_eq!(
            edit(
                "[s]\n",
                json!({"section": "s", "option": "a", "values": [""]})
            ),
            ("[s]\na = \n".into(), true, "option added")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "crlf.ini");
        std::fs::write(&f, "[s]\r\na = 1\r\n").expect("write");
        let same = json!({"path": f, "section": "s", "option": "a", "value": "1"});
        assert!(plan(&IniFile, &same).is_empty());
        let (_, out) = converge(
            &IniFile,
            &json!({"path": f, "section": "s", "option": "b", "value": "2"}),
        );
        assert_eq!(out.msg.as_deref(), Some("option added"));
        assert_eq!(
            std::fs::read_to_string(&f).unwrap_or_default(),
            "[s]\na = 1\nb = 2\n"
        );
    }

    /// `follow` edits the link's target; without it the link is replaced
    /// by the edited file, as the collection's rename over the path does.
    #[test]
    fn follow_edits_the_target_of_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = path_in(&dir, "real.ini");
        let link = path_in(&dir, "link.ini");
        std::fs::write(&target, "[s]\na = 1\n").expect("write");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        converge(
            &IniFile,
            &json!({"path": link, "section": "s", "option": "a", "value": "2", "follow": true}),
        );
        assert_eq!(
            std::fs::read_to_string(&target).unwrap_or_default(),
            "[s]\na = 2\n"
        );
        assert!(std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()));
        converge(
            &IniFile,
            &json!({"path": link, "section": "s", "option": "a", "value": "3"}),
        );
        assert!(std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_file()));
        assert_eq!(
            std::fs::read_to_string(&target).unwrap_or_default(),
            "[s]\na = 2\n"
        );
        assert_eq!(
            std::fs::read_to_string(&link).unwrap_or_default(),
            "[s]\na = 3\n"
        );
    }

    #[test]
    fn refuses_what_the_collection_refuses() {
        let p: IniFileParams = crate::module::parse_params(
            "ini_file",
            &json!({"path": "/x", "section": "s", "option": "a"}),
        )
        .expect("parse");
        let e = IniFile::request(&p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("value(s)"), "{e}");
        assert!(IniFile
            .check_params(&json!({"path": "/x", "option": "a", "value": "1", "bogus": 1}))
            .is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "none.ini");
        let e = DynModule::plan(
            &IniFile,
            &json!({"path": f, "option": "a", "value": "1", "create": false}),
            &mut host(),
        )
        .expect_err("missing file");
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    #[test]
    fn apply_then_plan_is_empty_and_check_mode_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "sub/app.ini");
        let params = json!({"dest": f, "section": "db", "option": "port", "value": 5432, "mode": "0600", "backup": true});
        // Check mode: the plan alone writes nothing.
        let first = plan(&IniFile, &params);
        assert!(!first.is_empty());
        assert_eq!(get(&first.result, "msg"), "section and option added");
        assert!(!std::path::Path::new(&f).exists());
        let (_, out) = converge(&IniFile, &params);
        assert!(out.changed);
        assert_eq!(get(&out.result, "path"), &json!(f));
        assert_eq!(get(&out.result, "mode"), "0600");
        assert_eq!(get(&out.result, "state"), "file");
        assert_eq!(get(&out.result, "size"), 18);
        assert_eq!(
            std::fs::read_to_string(&f).unwrap_or_default(),
            "\n[db]\nport = 5432\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        let again = plan(&IniFile, &params);
        assert_eq!(get(&again.result, "msg"), "OK");
        // A change with backup keeps the old file.
        let change =
            json!({"path": f, "section": "db", "option": "port", "value": "6432", "backup": true});
        let (_, out) = converge(&IniFile, &change);
        let b = get(&out.result, "backup_file")
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            std::fs::read_to_string(&b).unwrap_or_default(),
            "\n[db]\nport = 5432\n"
        );
        assert_eq!(out.msg.as_deref(), Some("option changed"));
    }
}
