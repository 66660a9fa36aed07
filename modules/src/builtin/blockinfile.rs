//! `blockinfile`: keep a block of lines between two marker lines in a file.
//!
//! Like `lineinfile`, the plan reads the file in its one probe and computes
//! the new content with Ansible's rules; apply writes it atomically. The
//! rules: an existing block (the last `BEGIN` and `END` marker lines) is
//! replaced in place; a new block goes after the last line matching
//! `insertafter`, before the last matching `insertbefore`, at `BOF`, or at
//! the end. An empty `block` (or `state=absent`) removes the block and its
//! markers.
//!
//! Differences from Ansible: patterns use Rust's `regex` syntax, and a
//! pattern with the multiline flag is still matched line by line.

use serde::Deserialize;
use serde_json::json;

use crate::builtin::lineinfile::{compile, search};
use crate::params::{de_bool, de_opt_bool, de_opt_mode, de_opt_string, Mode};
use crate::probe::WantedAttrs;
use crate::shell_quote::quote_path;
use crate::textfile::{self, lines_of, Edit, Read};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum BlockState {
    #[default]
    /// It should be there.
    Present,
    /// It should not be there.
    Absent,
}

fn default_marker() -> String {
    "# {mark} ANSIBLE MANAGED BLOCK".into()
}
fn default_begin() -> String {
    "BEGIN".into()
}
fn default_end() -> String {
    "END".into()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `blockinfile`: what `herd doc` shows, and what the parser takes.
pub struct BlockInFileParams {
    /// The file to edit.
    #[serde(alias = "dest", alias = "destfile", alias = "name")]
    pub path: String,
    /// `present`: the block is in the file between its markers; `absent`: the markers and what
    /// is between them are removed.
    #[serde(default)]
    pub state: BlockState,
    /// The marker line; `{mark}` is replaced by `marker_begin` and `marker_end`. Give each
    /// block of a file its own marker.
    #[serde(default = "default_marker")]
    pub marker: String,
    /// The text between the markers. Empty with `state: present` removes the block too.
    #[serde(default, alias = "content", deserialize_with = "de_opt_string")]
    pub block: Option<String>,
    /// Where a new block goes: `EOF` (the default) or a regular expression; the block goes
    /// after its last match.
    pub insertafter: Option<String>,
    /// Where a new block goes: `BOF` or a regular expression; the block goes before its last
    /// match.
    pub insertbefore: Option<String>,
    /// Create the file when it does not exist.
    #[serde(default, deserialize_with = "de_bool")]
    pub create: bool,
    /// Keep a timestamped copy of the file (`FILE.PID.YYYY-MM-DD@HH:MM:SS~`) before changing
    /// it; its path is returned as `backup_file`.
    #[serde(default, deserialize_with = "de_bool")]
    pub backup: bool,
    /// A command run on the new content before it replaces the file, with `%s` standing for a
    /// temp file; the task fails if it exits non-zero.
    pub validate: Option<String>,
    /// What `{mark}` becomes in the first marker line.
    #[serde(default = "default_begin")]
    pub marker_begin: String,
    /// What `{mark}` becomes in the last marker line.
    #[serde(default = "default_end")]
    pub marker_end: String,
    /// Add a blank line after the block when it is inserted.
    #[serde(default, deserialize_with = "de_bool")]
    pub append_newline: bool,
    /// Add a blank line before the block when it is inserted.
    #[serde(default, deserialize_with = "de_bool")]
    pub prepend_newline: bool,
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

/// The `blockinfile` module.
pub struct BlockInFile;

/// The new lines of a file, given its current lines. Returns the lines.
fn edit(p: &BlockInFileParams, mut lines: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, ModuleError> {
    let present = p.state == BlockState::Present;
    let (after, before) = match (&p.insertafter, &p.insertbefore) {
        (None, None) => (Some("EOF"), None),
        (a, b) => (a.as_deref(), b.as_deref()),
    };
    let insert_re = match (after, before) {
        (Some(a), _) if a != "EOF" => Some(compile(BlockInFile::NAME, "insertafter", a)?),
        (None, Some(b)) if b != "BOF" => Some(compile(BlockInFile::NAME, "insertbefore", b)?),
        _ => None,
    };
    let marker_line = |mark: &str| format!("{}\n", p.marker.replace("{mark}", mark)).into_bytes();
    let (begin, end) = (marker_line(&p.marker_begin), marker_line(&p.marker_end));
    let block = p.block.clone().unwrap_or_default();
    let block_lines: Vec<Vec<u8>> = if present && !block.is_empty() {
        let mut b = block.into_bytes();
        if !b.ends_with(b"\n") {
            b.push(b'\n');
        }
        let mut v = vec![begin.clone()];
        v.extend(lines_of(&b));
        v.push(end.clone());
        v
    } else {
        Vec::new()
    };

    let n0 = lines.iter().rposition(|l| *l == begin);
    let n1 = lines.iter().rposition(|l| *l == end);
    let mut at = match (n0, n1) {
        (Some(b), Some(e)) if b < e => {
            lines.drain(b..=e);
            b
        }
        (Some(b), Some(e)) => {
            lines.drain(e..=b);
            e
        }
        _ => match &insert_re {
            Some(re) => match lines.iter().rposition(|l| search(re, l).is_some()) {
                None => lines.len(),
                Some(i) if after.is_some() => i + 1,
                Some(i) => i,
            },
            None if before.is_some() => 0,
            None => lines.len(),
        },
    };
    if at > 0 && !lines[at - 1].ends_with(b"\n") {
        lines[at - 1].push(b'\n');
    }
    if p.prepend_newline && present && at != 0 && lines[at - 1] != b"\n" {
        lines.insert(at, b"\n".to_vec());
        at += 1;
    }
    let n = block_lines.len();
    lines.splice(at..at, block_lines);
    let next = at + n;
    if p.append_newline && present && next < lines.len() && lines[next] != b"\n" {
        lines.insert(next, b"\n".to_vec());
    }
    Ok(lines)
}

impl BlockInFile {
    fn want(p: &BlockInFileParams) -> WantedAttrs {
        WantedAttrs::ignoring_preserve(&p.owner, &p.group, &p.mode)
    }
}

impl Module for BlockInFile {
    const NAME: &'static str = "blockinfile";
    const DOC_SHORT: &'static str =
        "Insert, update or remove a block of lines between marker lines.";
    const DOC_LONG: &'static str = r##"The block is found by its marker lines, so a second run with other text replaces it in place. The file is written atomically and only when it changes."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Hosts of the cluster
  blockinfile:
    path: /etc/hosts
    marker: "# {mark} herd cluster"
    block: |
      10.0.0.11 es-1
      10.0.0.12 es-2
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] =
        &[("msg", "`Block inserted`, `Block removed`, ...")];
    type Params = BlockInFileParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        if p.insertafter.is_some() && p.insertbefore.is_some() {
            return Err(ModuleError::Params(ParamError::Invalid {
                module: Self::NAME,
                path: "insertbefore".into(),
                reason: "mutually exclusive with insertafter".into(),
            }));
        }
        let want = Self::want(p);
        let setup = format!("p={}", quote_path(&p.path));
        let dest = textfile::probe(host, &setup, true, &want, Read::All, "")?;
        if dest.is_dir() {
            return Err(ModuleError::failed(format!(
                "Path {} is a directory !",
                p.path
            )));
        }
        if !dest.exists() && !p.create {
            return Err(ModuleError::failed(format!(
                "Path {} does not exist !",
                p.path
            )));
        }
        let mut plan = Plan::default();
        if p.state == BlockState::Absent && !dest.exists() {
            plan.result
                .insert("msg".into(), json!(format!("File {} not present", p.path)));
            return Ok(plan);
        }
        let before = dest.content.clone().unwrap_or_default();
        let after = edit(p, lines_of(&before))?.concat();
        let path = dest.path.clone();
        let msg = if dest.exists() && before == after {
            ""
        } else if !dest.exists() {
            "File created"
        } else if p.state == BlockState::Absent || p.block.as_deref().unwrap_or("").is_empty() {
            "Block removed"
        } else {
            "Block inserted"
        };
        if !msg.is_empty() {
            plan.changes
                .push(format!("{} in {path}", msg.to_lowercase()));
            if let Some(d) = textfile::diff(&path, &before, &after) {
                plan.diffs.push(d);
            }
        }
        let attr_changes = match &dest.stat {
            Some(st) => want.diff(&path, st).0,
            None => Vec::new(),
        };
        let msg = match (msg, attr_changes.is_empty()) {
            ("", false) => "ownership, perms or SE linux context changed".to_string(),
            (m, false) => format!("{m} and ownership, perms or SE linux context changed"),
            (m, true) => m.to_string(),
        };
        plan.changes.extend(attr_changes);
        plan.result.insert("msg".into(), json!(msg));
        if !plan.is_empty() {
            let mode = textfile::resolve_mode(&want, &dest);
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
    use crate::testing::{converge, get, host, path_in, plan};
    use crate::DynModule;
    use serde_json::Value;

    fn read(p: &str) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    fn run(text: &str, mut params: Value) -> (Plan, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        std::fs::write(&f, text).expect("write");
        params["path"] = json!(f);
        // Planning alone leaves the file as it was.
        assert!(!plan(&BlockInFile, &params).is_empty());
        assert_eq!(read(&f), text);
        let (first, _) = converge(&BlockInFile, &params);
        (first, read(&f))
    }

    const M0: &str = "# BEGIN ANSIBLE MANAGED BLOCK\n";
    const M1: &str = "# END ANSIBLE MANAGED BLOCK\n";

    #[test]
    fn inserts_at_eof_then_replaces_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        std::fs::write(&f, "a\nb").expect("write");
        let params = json!({"path": f, "block": "x=1\ny=2"});
        let (first, out) = converge(&BlockInFile, &params);
        assert_eq!(first.diffs.len(), 1);
        assert_eq!(out.msg.as_deref(), Some("Block inserted"));
        assert_eq!(read(&f), format!("a\nb\n{M0}x=1\ny=2\n{M1}"));
        // A changed block replaces the old one where it is.
        std::fs::write(&f, format!("top\n{M0}old\n{M1}bottom\n")).expect("write");
        converge(&BlockInFile, &json!({"path": f, "block": "new\n"}));
        assert_eq!(read(&f), format!("top\n{M0}new\n{M1}bottom\n"));
        // An empty block removes it, markers and all.
        let (_, out) = converge(&BlockInFile, &json!({"path": f, "block": ""}));
        assert_eq!(out.msg.as_deref(), Some("Block removed"));
        assert_eq!(read(&f), "top\nbottom\n");
    }

    #[test]
    fn custom_markers_and_positions() {
        let (_, text) = run(
            "<html>\n<body>\n</body>\n",
            json!({"marker": "<!-- {mark} ANSIBLE MANAGED BLOCK -->", "insertafter": "<body>",
                   "block": "<h1>Welcome</h1>"}),
        );
        assert_eq!(
            text,
            "<html>\n<body>\n<!-- BEGIN ANSIBLE MANAGED BLOCK -->\n<h1>Welcome</h1>\n<!-- END ANSIBLE MANAGED BLOCK -->\n</body>\n"
        );
        let (_, text) = run(
            "a\n",
            json!({"insertbefore": "BOF", "block": "b", "marker_begin": "start", "marker_end": "stop",
                   "marker": "## {mark}"}),
        );
        assert_eq!(text, "## start\nb\n## stop\na\n");
        let (_, text) = run(
            "x\nend\n",
            json!({"insertbefore": "^end", "block": "b", "prepend_newline": true, "append_newline": "yes"}),
        );
        assert_eq!(text, format!("x\n\n{M0}b\n{M1}\nend\n"));
    }

    #[test]
    fn absent_create_and_backup() {
        let (_, text) = run(&format!("keep\n{M0}gone\n{M1}"), json!({"state": "absent"}));
        assert_eq!(text, "keep\n");
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "new");
        let missing = json!({"path": f, "block": "x"});
        assert!(DynModule::plan(&BlockInFile, &missing, &mut host()).is_err());
        let create = json!({"path": f, "block": "x", "create": true, "mode": "0600"});
        let (first, _) = converge(&BlockInFile, &create);
        assert_eq!(get(&first.result, "msg"), "File created");
        assert_eq!(read(&f), format!("{M0}x\n{M1}"));
        let params = json!({"path": f, "block": "y", "backup": true});
        let pl = plan(&BlockInFile, &params);
        let out = DynModule::apply(&BlockInFile, &params, pl, &mut host()).expect("apply");
        let b = get(&out.result, "backup_file")
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(read(&b), format!("{M0}x\n{M1}"));
    }

    /// `validate` gates the write: a rejected edit fails with Ansible's
    /// lineinfile/blockinfile message and leaves the file as it was; check
    /// mode (the plan alone) never runs the command.
    #[test]
    fn validate_gates_the_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file_with = |dir: &tempfile::TempDir, text: &str| {
            let f = path_in(dir, "f");
            std::fs::write(&f, text).expect("write");
            f
        };
        let f = file_with(&dir, "ok\n");
        let mark = path_in(&dir, "ran");
        let mut bad = json!({"block": "gone"});
        bad["path"] = json!(f);
        bad["validate"] = json!(format!(
            "sh -c 'touch {mark}; if grep -q gone \"$1\"; then echo no ok >&2; exit 2; fi' check %s"
        ));
        let pl = plan(&BlockInFile, &bad);
        assert!(!pl.is_empty());
        assert!(!std::path::Path::new(&mark).exists(), "plan ran validate");
        match DynModule::apply(&BlockInFile, &bad, pl, &mut host()) {
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

        let mut good = json!({"block": "ok more"});
        good["path"] = json!(f);
        good["validate"] = json!("grep -q ok %s");
        converge(&BlockInFile, &good);
        assert_eq!(read(&f), format!("ok\n{M0}ok more\n{M1}"));

        let mut no_s = json!({"block": "ok more"});
        no_s["path"] = json!(file_with(&dir, "ok\n"));
        no_s["validate"] = json!("true");
        let pl = plan(&BlockInFile, &no_s);
        let err = DynModule::apply(&BlockInFile, &no_s, pl, &mut host()).expect_err("no %s");
        assert_eq!(err.to_string(), "validate must contain %s: true");
    }
}
