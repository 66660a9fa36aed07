//! Ansible INI inventories: `[group]` host lines with inline `k=v` vars,
//! `[group:vars]` and `[group:children]` sections, `#`/`;` comments, host
//! ranges and `host:port`.
//!
//! Values are typed the way Ansible's ini plugin types them, which is not
//! quite what its documentation says: every value, inline or in a `:vars`
//! section, goes through Python's `ast.literal_eval`, and the raw text is
//! kept when that fails. So `port=22` is a number, `flag=True` a boolean,
//! `flag=yes` the string "yes", `x="'1'"` the string "1". The difference
//! between the two places is the splitting: a host line is split into shell
//! words first (quotes group and are removed, `#` ends the line), while a
//! `:vars` line is `key = everything after the first =`, so there `x = a b`
//! is "a b" and a trailing `# comment` stays in a value that is not a
//! Python literal.
//!
//! As in Ansible, `[g:children]` may name a group declared further down, but
//! a child group that is never declared (by `[child]` or `[child:children]`)
//! is an error, and so is `[g:vars]` for a group that exists nowhere.

use std::path::Path;
use std::sync::OnceLock;

use indexmap::IndexMap;
use regex::Regex;
use serde_json::Value;

use super::hostname;
use super::literal::{python_literal, shell_words, ShlexError};
use super::Inventory;
use crate::diagnostic::{did_you_mean, Diagnostic};

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Hosts,
    Vars,
    Children,
}

/// A group named in a section before it is declared.
struct Pending {
    state: State,
    line: usize,
    col: usize,
    len: usize,
    /// `[parent:children]` sections that list the group.
    parents: Vec<String>,
}

/// Parse one INI inventory into `inv`. Stops at the first error, as Ansible does.
pub fn parse(inv: &mut Inventory, path: &Path, text: &str) -> Result<(), Diagnostic> {
    let mut p = Parser {
        inv,
        path,
        group: "ungrouped".to_string(),
        state: State::Hosts,
        pending: IndexMap::new(),
    };
    for (index, raw) in text.lines().enumerate() {
        let lineno = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let indent = raw.chars().count() - raw.trim_start().chars().count();
        if let Some(c) = section_re().captures(line) {
            p.section(&c, line, indent, lineno)?;
            continue;
        }
        p.not_a_section(line, indent, lineno)?;
        match p.state {
            State::Hosts => host_line(p.inv, path, lineno, raw, &p.group)?,
            State::Vars => p.vars_line(line, indent, lineno)?,
            State::Children => p.children_line(line, indent, lineno)?,
        }
    }
    p.undeclared()
}

/// Where parsing is: the section being read and the groups named before
/// they were declared.
struct Parser<'a> {
    inv: &'a mut Inventory,
    path: &'a Path,
    /// The group of the current section (`ungrouped` before the first).
    group: String,
    state: State,
    pending: IndexMap<String, Pending>,
}

impl Parser<'_> {
    /// An error at a 0-based column of a 1-based line.
    fn err(&self, line: usize, col: usize, msg: String) -> Diagnostic {
        Diagnostic::new(self.path, line, col + 1, msg)
    }

    /// A `[name]`, `[name:vars]` or `[name:children]` header: its group
    /// becomes the current one, and a group named earlier is now declared.
    fn section(
        &mut self,
        c: &regex::Captures<'_>,
        line: &str,
        indent: usize,
        lineno: usize,
    ) -> Result<(), Diagnostic> {
        let name = c[1].to_string();
        let kind = c.get(2).map(|m| m.as_str()).unwrap_or("hosts");
        self.state = match kind {
            "hosts" => State::Hosts,
            "vars" => State::Vars,
            "children" => State::Children,
            other => {
                let at = indent + line[..c.get(2).map_or(0, |m| m.start())].chars().count();
                return Err(self.unknown_section_type(&name, other, lineno, at));
            }
        };
        let (inv, pending) = (&mut *self.inv, &mut self.pending);
        if !inv.groups.contains_key(&name) {
            // `[g:vars]` alone does not declare a group: remember it and
            // complain at the end if nothing else declares it.
            if self.state == State::Vars && !pending.contains_key(&name) {
                pending.insert(
                    name.clone(),
                    Pending {
                        state: self.state,
                        line: lineno,
                        col: indent + 2,
                        len: name.chars().count(),
                        parents: Vec::new(),
                    },
                );
            }
            inv.ensure_group(&name);
        }
        if self.state != State::Vars {
            if let Some(p) = pending.get(&name) {
                match p.state {
                    State::Children => add_pending_children(inv, &name, pending).map_err(|e| {
                        Diagnostic::new(self.path, lineno, indent + 2, e.to_string())
                            .with_len(name.chars().count())
                    })?,
                    _ => {
                        pending.shift_remove(&name);
                    }
                }
            }
        }
        self.group = name;
        Ok(())
    }

    /// `[name:other]` with a type that is neither `vars` nor `children`.
    fn unknown_section_type(
        &self,
        name: &str,
        other: &str,
        lineno: usize,
        at: usize,
    ) -> Diagnostic {
        let d = self
            .err(
                lineno,
                at,
                format!("section [{name}:{other}] has an unknown type `{other}`"),
            )
            .with_len(other.chars().count())
            .with_label("expected `vars` or `children`");
        // Typos like `child` or `var` are too short for edit distance alone.
        let guess = did_you_mean(other, ["vars", "children"]).or_else(|| {
            ["vars", "children"].into_iter().find(|c| {
                let head: String = other.chars().take(3).collect();
                head.chars().count() == 3 && c.starts_with(&head)
            })
        });
        match guess {
            Some(s) => d.with_help(format!("did you mean `[{name}:{s}]`?")),
            None => d.with_help(format!(
                "use [{name}] for hosts, [{name}:vars] for variables or [{name}:children] for child groups"
            )),
        }
    }

    /// A line that looks like a section header but is not one.
    fn not_a_section(&self, line: &str, indent: usize, lineno: usize) -> Result<(), Diagnostic> {
        if line.starts_with('[') && line.ends_with(']') {
            return Err(self
                .err(lineno, indent, "invalid section header".to_string())
                .with_len(line.chars().count())
                .with_help(
                    "a section is `[group]`, `[group:vars]` or `[group:children]`, without spaces",
                ));
        }
        // `[web] ; note` is not a section (only `#` comments may follow one),
        // and as a host line it would fail as an odd range; say what it is.
        // `[::1]:22` and `[web]:22` are hosts: a `:port` follows the bracket.
        if let Some(close) = line.strip_prefix('[').and_then(|l| l.find(']')) {
            if line[close + 2..].starts_with(char::is_whitespace) {
                return Err(self
                    .err(lineno, indent, "invalid section header".to_string())
                    .with_len(line[..close + 2].chars().count())
                    .with_help("only a `#` comment may follow a section header on its line"));
            }
        }
        Ok(())
    }

    /// `key=value` in a `[group:vars]` section.
    fn vars_line(&mut self, line: &str, indent: usize, lineno: usize) -> Result<(), Diagnostic> {
        let group = &self.group;
        let Some((k, v)) = line.split_once('=') else {
            return Err(self
                .err(
                    lineno,
                    indent,
                    format!("expected `key=value` in [{group}:vars]"),
                )
                .with_len(line.chars().count())
                .with_help("each line of a :vars section sets one variable: `name=value`"));
        };
        let key = k.trim();
        if key.is_empty() {
            return Err(self.err(
                lineno,
                indent,
                "missing variable name before `=`".to_string(),
            ));
        }
        let value = v.trim();
        let value = python_literal(value).unwrap_or_else(|| Value::from(value));
        self.inv.set_group_var(&self.group, key.to_string(), value);
        Ok(())
    }

    /// A group name in a `[group:children]` section; one not declared yet
    /// is linked when it is.
    fn children_line(
        &mut self,
        line: &str,
        indent: usize,
        lineno: usize,
    ) -> Result<(), Diagnostic> {
        let group = &self.group;
        let Some(c) = groupname_re().captures(line) else {
            return Err(self
                .err(lineno, indent, "expected a group name".to_string())
                .with_len(line.chars().count())
                .with_help(format!("[{group}:children] lists one group name per line")));
        };
        let child = c[1].to_string();
        if self.inv.groups.contains_key(&child) {
            self.inv.add_child(&self.group, &child).map_err(|e| {
                Diagnostic::new(self.path, lineno, indent + 1, e.to_string())
                    .with_len(child.chars().count())
            })?;
        } else {
            self.pending
                .entry(child.clone())
                .or_insert_with(|| Pending {
                    state: State::Children,
                    line: lineno,
                    col: indent + 1,
                    len: child.chars().count(),
                    parents: Vec::new(),
                })
                .parents
                .push(self.group.clone());
        }
        Ok(())
    }

    /// At the end: a group named by `[g:vars]` or `[p:children]` but never
    /// declared is an error.
    fn undeclared(self) -> Result<(), Diagnostic> {
        let Some((name, p)) = self.pending.first() else {
            return Ok(());
        };
        // Groups declared for real, to suggest the one probably meant.
        let declared = self
            .inv
            .groups
            .keys()
            .filter(|g| !self.pending.contains_key(*g))
            .map(String::as_str);
        let help = match did_you_mean(name, declared) {
            Some(g) => format!("did you mean `{g}`? Otherwise declare [{name}], even empty"),
            None => format!("declare it with a [{name}] section, even an empty one"),
        };
        let message = match p.state {
            State::Vars => format!("section [{name}:vars] is for a group that is never declared"),
            _ => {
                let parent = p.parents.last().cloned().unwrap_or_default();
                format!("[{parent}:children] lists group `{name}`, which is never declared")
            }
        };
        Err(Diagnostic::new(self.path, p.line, p.col, message)
            .with_len(p.len)
            .with_help(help))
    }
}

/// Link a group, now declared, to the `[p:children]` sections that named it.
fn add_pending_children(
    inv: &mut Inventory,
    group: &str,
    pending: &mut IndexMap<String, Pending>,
) -> Result<(), super::LinkError> {
    let parents = pending
        .get(group)
        .map(|p| p.parents.clone())
        .unwrap_or_default();
    pending.shift_remove(group);
    for parent in parents {
        inv.add_child(&parent, group)?;
        if pending
            .get(&parent)
            .is_some_and(|p| p.state == State::Children)
        {
            add_pending_children(inv, &parent, pending)?;
        }
    }
    Ok(())
}

/// `host[range][:port] k=v k='v w' ...`
fn host_line(
    inv: &mut Inventory,
    path: &Path,
    lineno: usize,
    raw: &str,
    group: &str,
) -> Result<(), Diagnostic> {
    let at = |col: usize| Diagnostic::new(path, lineno, col + 1, "");
    let words = shell_words(raw).map_err(|e| {
        let message = match e {
            ShlexError::NoClosingQuote { .. } => "unterminated quote in host line",
            ShlexError::NoEscapedChar { .. } => {
                "a backslash at the end of the line escapes nothing"
            }
        };
        Diagnostic {
            message: message.to_string(),
            ..at(e.col())
        }
    })?;
    let Some(first) = words.first() else {
        return Ok(());
    };
    let len = first.text.chars().count();
    let (names, port) = hostname::expand(&first.text).map_err(|e| {
        Diagnostic {
            message: format!("invalid host range: {e}"),
            ..at(first.col)
        }
        .with_len(len)
        .with_help("ranges look like `web[01:10]`, `db-[a:c]` or `node[1:9:2]`")
    })?;
    if first.text.trim_end().ends_with(':') && port.is_none() {
        return Err(Diagnostic {
            message: "a host name cannot end with `:`".to_string(),
            ..at(first.col)
        }
        .with_len(len)
        .with_help("write a port as `host:2222`"));
    }
    if names.iter().any(|n| n.trim() == "---") {
        return Err(Diagnostic {
            message: "`---` is not a host name; this looks like a YAML file".to_string(),
            ..at(first.col)
        }
        .with_len(len)
        .with_help("name YAML inventories with a .yml or .yaml extension"));
    }
    if first.text.contains('=') {
        // Ansible accepts this as a host name; it is almost always a
        // variable written in the wrong section.
        inv.warnings.push(
            Diagnostic {
                message: format!(
                    "host name `{}` contains `=`",
                    first.text.split('=').next().unwrap_or_default()
                ),
                ..at(first.col)
            }
            .with_len(len)
            .with_help(format!(
                "to set a variable for the group, put it in a [{group}:vars] section"
            )),
        );
    }
    let mut vars = Vec::new();
    for word in &words[1..] {
        let Some((k, v)) = word.text.split_once('=') else {
            return Err(Diagnostic {
                message: "expected `key=value` after the host name".to_string(),
                ..at(word.col)
            }
            .with_len(word.text.chars().count())
            .with_label("not a key=value pair")
            .with_help("quote values that contain spaces: key='a b'"));
        };
        if k.is_empty() {
            return Err(Diagnostic {
                message: "missing variable name before `=`".to_string(),
                ..at(word.col)
            });
        }
        let value = python_literal(v).unwrap_or_else(|| Value::from(v));
        vars.push((k.to_string(), value));
    }
    for name in &names {
        inv.add_host(name, group, port);
        for (k, v) in &vars {
            inv.set_host_var(name, k.clone(), v.clone());
        }
    }
    Ok(())
}

fn section_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // `[name]` or `[name:type]`, optionally followed by a `#` comment.
    RE.get_or_init(|| Regex::new(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$").expect("valid regex"))
}

fn groupname_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^([^:\]\s]+)\s*(?:#.*)?$").expect("valid regex"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(text: &str) -> Inventory {
        let mut inv = Inventory::default();
        parse(&mut inv, Path::new("hosts"), text).unwrap();
        inv.reconcile();
        inv
    }

    fn error(text: &str) -> Diagnostic {
        let mut inv = Inventory::default();
        parse(&mut inv, Path::new("hosts"), text).unwrap_err()
    }

    #[test]
    fn hosts_before_sections_are_ungrouped() {
        let inv = load("alone\n[web]\nw1\n");
        assert_eq!(inv.groups["ungrouped"].hosts, ["alone"]);
        assert_eq!(inv.groups["all"].children, ["ungrouped", "web"]);
    }

    #[test]
    fn inline_vars_are_python_literals() {
        let inv = load(
            "[g]\nh ansible_host=10.0.0.1 ansible_port=2222 x='a b' t=True y=yes s=\"'22'\" l=[1,2] e= # c\n",
        );
        assert_eq!(
            Value::Object(inv.hosts["h"].vars.clone()),
            json!({"ansible_host": "10.0.0.1", "ansible_port": 2222, "x": "a b", "t": true,
                   "y": "yes", "s": "22", "l": [1, 2], "e": ""})
        );
    }

    #[test]
    fn group_vars_take_the_rest_of_the_line() {
        let inv =
            load("[g]\nh\n[g:vars]\nport = 8080 # http\nname = a b\nflag=False\nc = yes # no\n");
        assert_eq!(
            Value::Object(inv.groups["g"].vars.clone()),
            json!({"port": 8080, "name": "a b", "flag": false, "c": "yes # no"})
        );
    }

    #[test]
    fn ports_and_ranges() {
        let inv = load("[web]\nweb[01:03]:2222 role=web\n");
        assert_eq!(inv.groups["web"].hosts, ["web01", "web02", "web03"]);
        assert_eq!(inv.hosts["web02"].vars["ansible_port"], json!(2222));
        assert_eq!(inv.hosts["web02"].vars["role"], json!("web"));
    }

    #[test]
    fn children_may_come_before_their_section() {
        let inv = load("[prod:children]\nweb\ndb\n[web]\nw1\n[db:children]\n[db]\nd1\n");
        assert_eq!(inv.groups["prod"].children, ["web", "db"]);
        assert_eq!(inv.groups["all"].children, ["ungrouped", "prod"]);
    }

    #[test]
    fn host_in_a_group_leaves_ungrouped() {
        let inv = load("h1\n[g]\nh1\n");
        assert!(inv.groups["ungrouped"].hosts.is_empty());
        assert_eq!(inv.group_names("h1"), ["g"]);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let d = error("[web]\nw1\n[web:child]\nx\n");
        assert_eq!((d.line, d.col, d.len), (3, 6, 5));
        assert_eq!(d.help.as_deref(), Some("did you mean `[web:children]`?"));

        let d = error("[web]\n  w[1:]  \n");
        assert_eq!((d.line, d.col, d.len), (2, 3, 5));
        assert!(d.message.contains("end value"), "{}", d.message);

        let d = error("[web]\nw1 port=22 oops\n");
        assert_eq!((d.line, d.col), (2, 12));

        let d = error("[web]\nw1 x='open\n");
        assert_eq!((d.line, d.col), (2, 6));

        let d = error("[a:children]\nb\n[c]\n");
        assert_eq!((d.line, d.col), (2, 1));
        assert!(d.message.contains("`b`"), "{}", d.message);

        let d = error("[x:vars]\na=1\n");
        assert_eq!((d.line, d.col, d.len), (1, 2, 1));

        let d = error("[bad group]\n");
        assert_eq!((d.line, d.col), (1, 1));

        let d = error("[web] ; web servers\nw1\n");
        assert_eq!((d.line, d.col, d.len), (1, 1, 5));

        let d = error("[a]\n[b]\n[a:children]\nb\n[b:children]\na\n");
        assert_eq!((d.line, d.col), (6, 1));
        assert!(d.message.contains("loop"), "{}", d.message);

        let d = error("[g:vars]\nnovalue\n[g]\n");
        assert_eq!((d.line, d.col), (2, 1));
    }
}
