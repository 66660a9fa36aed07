//! `file`: make a path a file, directory, symlink or hard link with the
//! wanted owner, group and mode, touch it, or remove it.
//!
//! The plan is one probe script (the path, its link target, `src`, the
//! owner/group lookups and, with `recurse`, a count of what differs inside)
//! and it writes the exact script `apply` will run into `Plan.state`, so
//! apply is one more round trip that also re-stats the path for the result.
//!
//! Differences from Ansible: `mode` on a symlink is ignored (Ansible changes
//! the target when following); `*_time_format` must be the default
//! `%Y%m%d%H%M.%S`; `attributes` and SELinux options are accepted and ignored.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::params::{
    apply_symbolic, de_bool, de_opt_bool, de_opt_mode, de_opt_string, mode_str, symbolic_for_chmod,
    yes, Mode,
};
use crate::probe::{
    check_principals, file_result, parse_stat, principals_snippet, stat_pair_snippet, stat_snippet,
    tagged, FileStat, Kind, WantedAttrs,
};
use crate::shell_quote::{quote, quote_path};
use crate::{Host, HostError, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// What `file` makes a path.
pub enum FileState {
    /// A regular file (only attributes are changed).
    File,
    /// A directory, created with its parents.
    Directory,
    /// Created empty, or its times updated.
    Touch,
    /// Removed, recursively.
    Absent,
    /// A symbolic link to `src`.
    Link,
    /// A hard link to `src`.
    Hard,
}

impl FileState {
    fn word(self) -> &'static str {
        match self {
            FileState::File => "file",
            FileState::Directory => "directory",
            FileState::Touch => "touch",
            FileState::Absent => "absent",
            FileState::Link => "link",
            FileState::Hard => "hard",
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `file`: what `herd doc` shows, and what the parser takes.
pub struct FileParams {
    /// The path on the host to manage.
    #[serde(alias = "dest", alias = "name")]
    pub path: String,
    /// What `path` should be: `file` (only change attributes of an existing file), `directory`
    /// (created with its parents), `touch` (created empty or its times updated), `absent`
    /// (removed, recursively), `link` (a symlink to `src`) or `hard` (a hard link to `src`).
    /// Unset: `file` when the path exists, else an error like Ansible's, or `link`/`hard` when
    /// `src` is given.
    pub state: Option<FileState>,
    /// The link target for `state: link` or `hard`.
    pub src: Option<String>,
    /// Permissions: an octal string (`"0644"`), a YAML octal number (`0644`) or a symbolic mode
    /// (`u=rw,g=r,o=r`); unset leaves them as they are (a new file gets the umask's).
    #[serde(default, deserialize_with = "de_opt_mode")]
    pub mode: Option<Mode>,
    /// User that should own the file (name or uid); unset leaves it as it is.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub owner: Option<String>,
    /// Group that should own the file (name or gid); unset leaves it as it is.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub group: Option<String>,
    /// With `state: directory`, set owner, group and mode on everything below `path` too
    /// (symlinks inside are skipped).
    #[serde(default, deserialize_with = "de_bool")]
    pub recurse: bool,
    /// For `link`/`hard`: replace a file in the way, and make a symlink to a target that does
    /// not exist.
    #[serde(default, deserialize_with = "de_bool")]
    pub force: bool,
    /// Change the target of a symlink `path` rather than the link itself.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub follow: bool,
    /// `now`, `preserve`, or a time in `modification_time_format` to set the file's mtime to.
    pub modification_time: Option<String>,
    /// The format of `modification_time`; only the default `%Y%m%d%H%M.%S` is supported.
    pub modification_time_format: Option<String>,
    /// `now`, `preserve`, or a time in `access_time_format` to set the file's atime to.
    pub access_time: Option<String>,
    /// The format of `access_time`; only the default `%Y%m%d%H%M.%S` is supported.
    pub access_time_format: Option<String>,
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
    /// Accepted and ignored: files are always written atomically (temp file, then rename).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub unsafe_writes: Option<bool>,
    /// Accepted for compatibility with old playbooks; ignored.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub diff_peek: Option<bool>,
}

/// The only time format we support: the one `touch -t` takes.
const TIME_FORMAT: &str = "%Y%m%d%H%M.%S";

/// What to do with one of a path's times.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TimeAction {
    Preserve,
    Now,
    /// `touch -t` form, `YYYYmmddHHMM.SS`.
    At(String),
}

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: File::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

fn time_action(
    name: &str,
    value: Option<&str>,
    format: Option<&str>,
    default: TimeAction,
) -> Result<TimeAction, ModuleError> {
    if let Some(f) = format.filter(|f| *f != TIME_FORMAT) {
        return Err(invalid(
            &format!("{name}_format"),
            format!("only {TIME_FORMAT:?} is supported, not {f:?}"),
        ));
    }
    Ok(match value {
        None => default,
        Some("preserve") => TimeAction::Preserve,
        Some("now") => TimeAction::Now,
        Some(t) => {
            let ok = t.len() == 15
                && t.bytes().enumerate().all(|(i, b)| {
                    if i == 12 {
                        b == b'.'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            if !ok {
                return Err(invalid(
                    name,
                    format!(
                        "expected \"now\", \"preserve\" or a time like 202401311200.00, got {t:?}"
                    ),
                ));
            }
            TimeAction::At(t.to_string())
        }
    })
}

/// `a/b/c` -> `a`, `a/b`, `a/b/c`: the directories `state=directory` may create.
fn components(path: &str) -> Vec<String> {
    let trimmed = path.trim_end_matches('/');
    let mut out = Vec::new();
    for (i, c) in trimmed.char_indices() {
        if c == '/' && i > 0 && !trimmed[..i].ends_with('/') {
            out.push(trimmed[..i].to_string());
        }
    }
    if !trimmed.is_empty() {
        out.push(trimmed.to_string());
    }
    out
}

fn parent_dir(path: &str) -> String {
    match path.trim_end_matches('/').rfind('/') {
        Some(0) => "/".into(),
        Some(i) => path[..i].to_string(),
        None => ".".into(),
    }
}

/// The `file` module.
pub struct File;

/// Everything the probe found.
struct Found {
    prev: Option<FileStat>,
    /// The path with symlinks followed (when `follow`).
    target: Option<FileStat>,
    src: Option<FileStat>,
    link_text: Option<String>,
    mtime: Option<String>,
    atime: Option<String>,
    /// Paths under a directory whose owner/group (or numeric mode) differ.
    recurse_count: u64,
    /// `(mode, is_dir)` of every path under a directory, for symbolic modes.
    recurse_modes: Vec<(u32, bool)>,
}

impl File {
    fn probe(
        &self,
        p: &FileParams,
        state: Option<FileState>,
        want: &WantedAttrs,
        times: bool,
        host: &mut dyn Host,
    ) -> Result<Found, ModuleError> {
        let pw = quote_path(&p.path);
        let mut s = stat_pair_snippet("P", "T", &pw);
        s.push_str(&format!(
            "if [ -L {pw} ]; then printf 'L %s\\n' \"$(readlink -- {pw})\"; fi\n"
        ));
        if let Some(src) = &p.src {
            // A relative src is relative to the link's directory. A symlink's
            // src must exist through links (os.path.exists), a hard link's
            // is the path itself.
            let follow = state != Some(FileState::Hard);
            s.push_str(&format!(
                "(if cd -- {} 2>/dev/null; then {}; else echo S -; fi)\n",
                quote_path(&parent_dir(&p.path)),
                stat_snippet("S", &quote_path(src), follow).trim_end()
            ));
        }
        s.push_str(&principals_snippet(want));
        if times {
            s.push_str(&format!(
                "if [ -e {pw} ]; then for f in Y:MT X:AT; do \
                 printf '%s %s\\n' \"${{f#*:}}\" \"$(date -d @\"$(stat -L -c %\"${{f%%:*}}\" -- {pw})\" +%Y%m%d%H%M.%S)\"; done; fi\n"
            ));
        }
        let recurse = p.recurse && state == Some(FileState::Directory);
        if recurse {
            let mut preds = Vec::new();
            if let Some(o) = &want.owner {
                preds.push(format!("! -user {}", quote(o)));
            }
            if let Some(g) = &want.group {
                preds.push(format!("! -group {}", quote(g)));
            }
            if let Some(Mode::Octal(m)) = want.mode {
                preds.push(format!("! -perm {}", mode_str(m)));
            }
            if !preds.is_empty() {
                s.push_str(&format!(
                    "if [ -d {pw} ]; then echo RC $(find {pw} -mindepth 1 ! -type l \\( {} \\) -print 2>/dev/null | wc -l); fi\n",
                    preds.join(" -o ")
                ));
            }
            if let Some(Mode::Symbolic(_)) = want.mode {
                s.push_str(&format!(
                    "if [ -d {pw} ]; then find {pw} -mindepth 1 ! -type l -printf 'RM %m %y\\n'; fi\n"
                ));
            }
        }
        let out = host.run(&s, None)?;
        let text = out.stdout_str();
        check_principals(&text, want)?;
        let stat = |tag: &str| parse_stat(&text, tag).map_err(ModuleError::from);
        let recurse_modes = text
            .lines()
            .filter_map(|l| l.strip_prefix("RM "))
            .filter_map(|l| {
                let (m, t) = l.split_once(' ')?;
                Some((u32::from_str_radix(m, 8).ok()?, t == "d"))
            })
            .collect();
        Ok(Found {
            prev: stat("P")?,
            target: stat("T")?,
            src: if p.src.is_some() { stat("S")? } else { None },
            link_text: tagged(&text, "L").map(str::to_string),
            mtime: tagged(&text, "MT").map(str::to_string),
            atime: tagged(&text, "AT").map(str::to_string),
            recurse_count: tagged(&text, "RC")
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0),
            recurse_modes,
        })
    }
}

/// The plan's private state: the script apply runs, and how to stat after.
fn plan_state(script: String, state: FileState, follow: bool) -> Value {
    json!({"script": script, "state": state.word(), "follow": follow})
}

impl Module for File {
    const NAME: &'static str = "file";
    const DOC_SHORT: &'static str =
        "Manage a path's type, owner, group, mode and times: directories, symlinks, removal.";
    const DOC_LONG: &'static str = r##"The plan reads the path's state in one round trip; only what differs is changed. `--diff` shows the path, state and changed attributes."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Data directory
  file:
    path: /srv/app/data
    state: directory
    owner: app
    mode: "0750"

- name: Current release
  file:
    src: /srv/app/releases/42
    dest: /srv/app/current
    state: link
"##;
    type Params = FileParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let want = WantedAttrs::ignoring_preserve(&p.owner, &p.group, &p.mode);
        let (mtime, atime) = time_actions(p)?;
        let explicit_times =
            matches!(mtime, TimeAction::At(_)) || matches!(atime, TimeAction::At(_));
        if matches!(p.state, Some(FileState::Link | FileState::Hard)) && p.src.is_none() {
            return Err(invalid("src", "required with state=link and state=hard"));
        }

        let found = self.probe(p, p.state, &want, explicit_times, host)?;
        let state = p.state.unwrap_or_else(|| implied_state(p, &found));
        // A recursing directory the caller did not name explicitly needs the
        // recursion facts too: probe again (rare: `recurse` without `state`).
        let found = if p.state.is_none()
            && state == FileState::Directory
            && p.recurse
            && found.prev.is_some()
        {
            self.probe(p, Some(state), &want, explicit_times, host)?
        } else {
            found
        };

        let mut plan = Plan::default();
        let mut script = String::from("set -e\n");
        // The path as apply will see it: followed through a symlink when asked.
        let eff = if p.follow && found.prev.as_ref().is_some_and(|s| s.kind == Kind::Link) {
            found.target.clone()
        } else {
            found.prev.clone()
        };
        let pw = quote_path(&p.path);
        let cx = Seen {
            p,
            path: p.path.as_str(),
            pw: &pw,
            want: &want,
            found: &found,
            eff: &eff,
        };
        match state {
            FileState::Absent => plan_absent(&cx, &mut plan, &mut script),
            FileState::File | FileState::Directory | FileState::Touch => {
                plan_present(&cx, state, &mut plan, &mut script)?;
                plan_times(&cx, &mtime, &atime, &mut plan, &mut script);
            }
            FileState::Link => plan_symlink(&cx, &mut plan, &mut script)?,
            FileState::Hard => plan_hard_link(&cx, &mut plan, &mut script)?,
        }
        // A link's result is the link itself, never a followed target.
        let result_follow = p.follow && !matches!(state, FileState::Link | FileState::Hard);
        Ok(finish_plan(&cx, state, result_follow, plan, script))
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let script = plan.state.get("script").and_then(Value::as_str);
        let state = plan.state.get("state").and_then(Value::as_str);
        let (Some(script), Some(state)) = (script, state) else {
            return Err(ModuleError::failed("file: apply called without a plan"));
        };
        let follow = plan
            .state
            .get("follow")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let pw = quote_path(&p.path);
        let full = format!("{script}{}", stat_snippet("R", &pw, follow));
        let out = host.run(&full, None)?;
        if !out.success() {
            return Err(ModuleError::Host(HostError::Command {
                action: "file",
                rc: out.rc,
                stderr: out.stderr_str(),
            }));
        }
        let text = out.stdout_str();
        let st = parse_stat(&text, "R").map_err(ModuleError::from)?;
        let mut result = if state == "absent" {
            let mut m = serde_json::Map::new();
            m.insert("path".into(), json!(p.path));
            m.insert("state".into(), json!("absent"));
            m
        } else {
            file_result("path", &p.path, st.as_ref())
        };
        if matches!(state, "link" | "hard") {
            result.insert("dest".into(), json!(p.path));
            if let Some(src) = &p.src {
                result.insert("src".into(), json!(src));
            }
            result.insert("state".into(), json!(state));
        }
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}
/// What every state's part of the plan reads: the parameters, the path
/// (and its shell word), the wanted attributes and what the probe found.
struct Seen<'a> {
    p: &'a FileParams,
    path: &'a str,
    pw: &'a str,
    want: &'a WantedAttrs,
    found: &'a Found,
    /// The path as apply will see it: followed through a symlink when asked.
    eff: &'a Option<FileStat>,
}

/// The times `modification_time`/`access_time` ask for; `touch` sets both
/// to now unless told otherwise.
fn time_actions(p: &FileParams) -> Result<(TimeAction, TimeAction), ModuleError> {
    let touching = p.state == Some(FileState::Touch);
    let default_time = if touching {
        TimeAction::Now
    } else {
        TimeAction::Preserve
    };
    let mtime = time_action(
        "modification_time",
        p.modification_time.as_deref(),
        p.modification_time_format.as_deref(),
        default_time.clone(),
    )?;
    let atime = time_action(
        "access_time",
        p.access_time.as_deref(),
        p.access_time_format.as_deref(),
        default_time,
    )?;
    Ok((mtime, atime))
}

/// The state when none is given. As Ansible: an existing path keeps its
/// kind; a missing one is a directory only when recursing.
fn implied_state(p: &FileParams, found: &Found) -> FileState {
    match &found.prev {
        None if p.recurse => FileState::Directory,
        None => FileState::File,
        Some(st) => match st.kind {
            Kind::Dir => FileState::Directory,
            // An existing link without `state`: its target's
            // attributes when following, else the link as it is.
            Kind::Link if !p.follow => FileState::Link,
            Kind::Link if found.target.as_ref().is_some_and(|t| t.kind == Kind::Dir) => {
                FileState::Directory
            }
            _ => FileState::File,
        },
    }
}

/// `state: absent`: remove whatever is there.
fn plan_absent(cx: &Seen<'_>, plan: &mut Plan, script: &mut String) {
    let Seen {
        path, pw, found, ..
    } = *cx;
    if let Some(prev) = &found.prev {
        let what = if prev.kind == Kind::Dir {
            "directory"
        } else {
            "path"
        };
        plan.changes.push(format!("remove {what} {path}"));
        script.push_str(&format!("rm -rf -- {pw}\n"));
    }
    plan.result.insert("path".into(), json!(path));
    plan.result.insert("state".into(), json!("absent"));
}

/// `state: file`, `directory` or `touch`: create what is missing (only a
/// directory or a touched file), then owner, group and mode (and with
/// `recurse`, everything under a directory).
fn plan_present(
    cx: &Seen<'_>,
    state: FileState,
    plan: &mut Plan,
    script: &mut String,
) -> Result<(), ModuleError> {
    let Seen {
        p,
        path,
        pw,
        want,
        found,
        eff,
    } = *cx;
    let is_dir_state = state == FileState::Directory;
    match eff {
        None if state == FileState::File => {
            return Err(ModuleError::failed(format!(
                "file ({path}) is absent, cannot continue"
            )))
        }
        None if is_dir_state => {
            plan.changes.push(format!("create directory {path}"));
            let mode = want.mode.as_ref().and_then(|m| m.resolve(None, true));
            let words: Vec<String> = components(path).iter().map(|c| quote_path(c)).collect();
            // Another host (or process) may create a component
            // between the test and our mkdir: a directory there
            // now is as good as one we made, as in Ansible. The
            // second mkdir only reports why it is not one.
            script.push_str(&format!(
                "for d in {}; do if [ ! -e \"$d\" ]; then mkdir -- \"$d\" 2>/dev/null || [ -d \"$d\" ] || mkdir -- \"$d\"\n{}fi; done\n",
                words.join(" "),
                want.apply_script("\"$d\"", mode, false)
            ));
        }
        None => {
            plan.changes.push(format!("create {path}"));
            let mode = want.mode.as_ref().and_then(|m| m.resolve(None, false));
            script.push_str(&format!("touch -- {pw}\n"));
            script.push_str(&want.apply_script(pw, mode, false));
        }
        Some(st) => {
            if state == FileState::File && st.kind == Kind::Dir {
                return Err(ModuleError::failed(format!(
                    "file ({path}) is directory, cannot continue"
                )));
            }
            if is_dir_state && st.kind != Kind::Dir {
                return Err(ModuleError::failed(format!(
                    "{path} already exists as a {}",
                    st.kind.state_word()
                )));
            }
            let (changes, mode) = want.diff(path, st);
            if !changes.is_empty() {
                plan.changes.extend(changes);
                script.push_str(&want.apply_script(pw, mode, false));
            }
            if is_dir_state && p.recurse {
                recurse_plan(plan, script, want, found, path);
            }
        }
    }
    Ok(())
}

/// Times: `now` always changes, like Ansible's touch; a given time is set
/// when it differs (always on a path about to be created).
fn plan_times(
    cx: &Seen<'_>,
    mtime: &TimeAction,
    atime: &TimeAction,
    plan: &mut Plan,
    script: &mut String,
) {
    let Seen {
        path,
        pw,
        found,
        eff,
        ..
    } = *cx;
    let mut touch = Vec::new();
    for (action, flag, current, what) in [
        (mtime, "-m", &found.mtime, "modification"),
        (atime, "-a", &found.atime, "access"),
    ] {
        match action {
            TimeAction::Preserve => {}
            TimeAction::Now => {
                if eff.is_some() {
                    plan.changes.push(format!("update {what} time of {path}"));
                }
                touch.push(format!("touch {flag} -- {pw}\n"));
            }
            TimeAction::At(t) => {
                if eff.is_none() || current.as_deref() != Some(t.as_str()) {
                    if eff.is_some() {
                        plan.changes.push(format!("{what} time of {path} -> {t}"));
                    }
                    touch.push(format!("touch {flag} -t {} -- {pw}\n", quote(t)));
                }
            }
        }
    }
    if !plan.changes.is_empty() {
        for t in touch {
            script.push_str(&t);
        }
    }
}

/// `state: link`: a symlink to `src` (or, without `src`, the link's own
/// target), replacing a file or directory only with `force`.
fn plan_symlink(cx: &Seen<'_>, plan: &mut Plan, script: &mut String) -> Result<(), ModuleError> {
    let Seen {
        p,
        path,
        pw,
        want,
        found,
        ..
    } = *cx;
    // Without `src` (no `state` given) the link keeps its target.
    let src = p
        .src
        .as_deref()
        .or(found.link_text.as_deref())
        .unwrap_or_default();
    let mut relink = true;
    match &found.prev {
        None => plan.changes.push(format!("create symlink {path} -> {src}")),
        Some(st) if st.kind == Kind::Link => {
            if found.link_text.as_deref() == Some(src) {
                relink = false;
            } else {
                plan.changes.push(format!(
                    "relink {path}: {} -> {src}",
                    found.link_text.as_deref().unwrap_or("?")
                ));
            }
        }
        Some(st) if st.kind == Kind::Dir => {
            if !p.force {
                return Err(ModuleError::failed(format!(
                    "refusing to convert from directory to symlink for {path}"
                )));
            }
            plan.changes
                .push(format!("replace directory {path} with symlink -> {src}"));
            script.push_str(&format!("rmdir -- {pw}\n"));
        }
        Some(st) => {
            if !p.force {
                return Err(ModuleError::failed(format!(
                    "refusing to convert from {} to symlink for {path}",
                    st.kind.state_word()
                )));
            }
            plan.changes
                .push(format!("replace {path} with symlink -> {src}"));
        }
    }
    if relink && found.src.is_none() && !p.force {
        // As with copy into a missing directory: check mode
        // reports the link (an earlier task may only have
        // planned to create its source) and applying refuses
        // with Ansible's message if the source is still missing.
        let refusal = format!(
            "src file does not exist, use \"force=yes\" if you really want to create the link: {src}"
        );
        plan.changes.push(format!(
            "link source {src} does not exist yet (an earlier task has to create it)"
        ));
        // Right after `set -e`, before anything is changed.
        script.insert_str(
            "set -e\n".len(),
            &format!(
                "if [ ! -e {} ]; then echo {} >&2; exit 1; fi\n",
                quote(&link_source_path(path, src)),
                quote(&refusal)
            ),
        );
    }
    let no_mode = WantedAttrs {
        mode: None,
        ..want.clone()
    };
    if relink {
        script.push_str(&format!("ln -sfn -- {} {pw}\n", quote(src)));
        script.push_str(&no_mode.apply_script(pw, None, true));
    } else if let Some(st) = &found.prev {
        let (changes, _) = no_mode.diff(path, st);
        if !changes.is_empty() {
            plan.changes.extend(changes);
            script.push_str(&no_mode.apply_script(pw, None, true));
        }
    }
    plan.result.insert("src".into(), json!(src));
    Ok(())
}

/// `state: hard`: a hard link to `src`, which must exist.
fn plan_hard_link(cx: &Seen<'_>, plan: &mut Plan, script: &mut String) -> Result<(), ModuleError> {
    let Seen {
        p,
        path,
        pw,
        want,
        found,
        ..
    } = *cx;
    let src = p.src.as_deref().unwrap_or_default();
    let Some(s) = &found.src else {
        return Err(ModuleError::failed(format!("src does not exist: {src}")));
    };
    let same = found
        .prev
        .as_ref()
        .is_some_and(|st| st.inode == s.inode && st.dev == s.dev);
    if !same {
        match &found.prev {
            None => plan
                .changes
                .push(format!("create hard link {path} -> {src}")),
            Some(st) if st.kind == Kind::Dir => {
                return Err(ModuleError::failed(format!(
                    "{path} is a directory, cannot replace it with a hard link"
                )))
            }
            Some(st) => {
                if !p.force {
                    return Err(ModuleError::failed(format!(
                        "refusing to convert from {} to hard link for {path}",
                        st.kind.state_word()
                    )));
                }
                plan.changes
                    .push(format!("replace {path} with hard link -> {src}"));
            }
        }
        // ln resolves a relative src from the current directory;
        // Ansible's is relative to the link's directory, so run
        // ln there, naming a relative link from where we were.
        let link = if path.starts_with('/') || path.starts_with('~') {
            pw.to_string()
        } else {
            format!("\"$OLDPWD\"/{pw}")
        };
        script.push_str(&format!(
            "(cd -- {} && ln -f -- {} {link})\n",
            quote_path(&parent_dir(path)),
            quote(src),
        ));
    }
    let (changes, mode) = want.diff(path, s);
    if !changes.is_empty() || !same {
        plan.changes.extend(changes);
        script.push_str(&want.apply_script(pw, mode, false));
    }
    plan.result.insert("src".into(), json!(src));
    Ok(())
}

/// An empty plan reports the path as it is; a change keeps the script
/// apply runs and a diff of the path's state.
fn finish_plan(
    cx: &Seen<'_>,
    state: FileState,
    result_follow: bool,
    mut plan: Plan,
    script: String,
) -> Plan {
    let Seen {
        path,
        want,
        found,
        eff,
        ..
    } = *cx;
    if plan.is_empty() {
        let st = if result_follow {
            eff.as_ref()
        } else {
            found.prev.as_ref()
        };
        if state != FileState::Absent {
            plan.result = merged(file_result("path", path, st), plan.result);
        }
        // A link's result names it `dest`, changed or not, as Ansible's.
        if matches!(state, FileState::Link | FileState::Hard) {
            plan.result.insert("dest".into(), json!(path));
        }
        plan.result.insert("changed".into(), json!(false));
    } else {
        let before = if result_follow {
            eff.as_ref()
        } else {
            found.prev.as_ref()
        };
        plan.diffs.push(state_diff(path, before, state, want));
        plan.state = plan_state(script, state, result_follow);
    }
    plan
}

/// Ansible's `file` diff: the path's state and the attributes that change,
/// before and after, as pretty JSON.
fn state_diff(
    path: &str,
    st: Option<&FileStat>,
    state: FileState,
    want: &WantedAttrs,
) -> crate::FileDiff {
    let mut before = serde_json::Map::new();
    let mut after = serde_json::Map::new();
    before.insert("path".into(), json!(path));
    after.insert("path".into(), json!(path));
    before.insert(
        "state".into(),
        json!(st.map_or("absent", |s| s.kind.state_word())),
    );
    after.insert("state".into(), json!(state.word()));
    if state != FileState::Absent {
        let is_dir = state == FileState::Directory;
        if let Some(m) = want
            .mode
            .as_ref()
            .and_then(|m| m.resolve(st.map(|s| s.mode), is_dir))
            .filter(|m| st.map(|s| s.mode) != Some(*m))
        {
            before.insert("mode".into(), json!(st.map(|s| mode_str(s.mode))));
            after.insert("mode".into(), json!(mode_str(m)));
        }
        for (key, wanted, cur) in [
            ("owner", &want.owner, st.map(|s| (s.owner.as_str(), s.uid))),
            ("group", &want.group, st.map(|s| (s.group.as_str(), s.gid))),
        ] {
            if let Some(w) = wanted {
                if !cur.is_some_and(|(name, id)| crate::params::same_principal(w, name, id)) {
                    before.insert(key.into(), json!(cur.map(|(name, _)| name)));
                    after.insert(key.into(), json!(w));
                }
            }
        }
    }
    let text = |m: serde_json::Map<String, Value>| {
        serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_default() + "\n"
    };
    crate::FileDiff {
        path: path.to_string(),
        before: text(before),
        after: text(after),
    }
}

fn merged(
    mut a: serde_json::Map<String, Value>,
    b: serde_json::Map<String, Value>,
) -> serde_json::Map<String, Value> {
    a.extend(b);
    a
}

/// Plan `recurse`: owner, group and mode of everything under a directory
/// (symlinks excluded: chown would follow them out of the tree).
fn recurse_plan(
    plan: &mut Plan,
    script: &mut String,
    want: &WantedAttrs,
    found: &Found,
    path: &str,
) {
    let pw = quote_path(path);
    let symbolic = match &want.mode {
        Some(Mode::Symbolic(s)) => Some(s.as_str()),
        _ => None,
    };
    let mode_diffs = symbolic.map_or(0, |s| {
        found
            .recurse_modes
            .iter()
            .filter(|(m, dir)| apply_symbolic(s, *m, *dir).is_ok_and(|n| n != *m))
            .count() as u64
    });
    let n = found.recurse_count.max(mode_diffs);
    if n == 0 {
        return;
    }
    plan.changes
        .push(format!("owner/group/mode of {n} path(s) under {path}"));
    let find = format!("find {pw} -mindepth 1 ! -type l -exec");
    match (&want.owner, &want.group) {
        (Some(o), Some(g)) => script.push_str(&format!(
            "{find} chown -- {} {{}} +\n",
            quote(&format!("{o}:{g}"))
        )),
        (Some(o), None) => script.push_str(&format!("{find} chown -- {} {{}} +\n", quote(o))),
        (None, Some(g)) => script.push_str(&format!("{find} chgrp -- {} {{}} +\n", quote(g))),
        (None, None) => {}
    }
    match &want.mode {
        Some(Mode::Octal(m)) => {
            script.push_str(&format!("{find} chmod -- {} {{}} +\n", mode_str(*m)));
        }
        Some(Mode::Symbolic(s)) => script.push_str(&format!(
            "{find} chmod -- {} {{}} +\n",
            quote(&symbolic_for_chmod(s))
        )),
        _ => {}
    }
}

/// Where a symlink's `src` points, as a path to test: a relative `src` is
/// relative to the link's directory.
fn link_source_path(link: &str, src: &str) -> String {
    if src.starts_with('/') {
        return src.to_string();
    }
    match link.rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => format!("{dir}/{src}"),
        Some(_) => format!("/{src}"),
        None => src.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{apply, converge, get, host, path_in, plan};
    use crate::DynModule;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn mode_of(p: &str) -> u32 {
        std::fs::symlink_metadata(p)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0)
    }

    #[test]
    fn directory_with_parents_and_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = path_in(&dir, "a/b/c");
        let params = json!({"path": d, "state": "directory", "mode": "0750"});
        let first = plan(&File, &params);
        assert!(!std::path::Path::new(&d).exists(), "plan created the dir");
        assert_eq!(first.changes, [format!("create directory {d}")]);
        let (_, out) = converge(&File, &params);
        assert_eq!(get(&out.result, "state"), "directory");
        assert_eq!(get(&out.result, "mode"), "0750");
        assert_eq!(mode_of(&d), 0o750);
        assert_eq!(mode_of(&path_in(&dir, "a")), 0o750);
        // A symbolic mode that already holds is no change.
        assert!(plan(
            &File,
            &json!({"path": d, "state": "directory", "mode": "u=rwx,g=rx"})
        )
        .is_empty());
        let (first, _) = converge(&File, &json!({"path": d, "mode": "o+rx"}));
        assert_eq!(first.changes, [format!("mode 0750 -> 0755 on {d}")]);
        let diff = &first.diffs[0];
        assert!(
            diff.before.contains("\"mode\": \"0750\""),
            "{}",
            diff.before
        );
        assert!(diff.after.contains("\"mode\": \"0755\""), "{}", diff.after);
        assert!(diff.after.contains("\"state\": \"directory\""));
    }

    #[test]
    fn touch_file_and_attributes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        let params = json!({"path": f, "state": "touch", "mode": "u=rw,g=r,o=r",
            "modification_time": "preserve", "access_time": "preserve"});
        let (first, out) = converge(&File, &params);
        assert_eq!(first.changes, [format!("create {f}")]);
        assert_eq!(get(&out.result, "mode"), "0644");
        assert_eq!(get(&out.result, "size"), 0);
        // Plain touch changes every time, as Ansible's does.
        let touch = json!({"path": f, "state": "touch"});
        assert!(!plan(&File, &touch).is_empty());

        let params = json!({"path": f, "mode": 0o600, "owner": "nobody", "group": "daemon"});
        let (first, out) = converge(&File, &params);
        assert_eq!(first.changes.len(), 3, "{:?}", first.changes);
        assert_eq!(get(&out.result, "owner"), "nobody");
        assert_eq!(get(&out.result, "group"), "daemon");
        assert_eq!(get(&out.result, "gid"), 1);
        assert_eq!(mode_of(&f), 0o600);
        let again = plan(
            &File,
            &json!({"path": f, "owner": "65534", "state": "file"}),
        );
        assert!(again.is_empty());
        assert_eq!(get(&again.result, "mode"), "0600");
    }

    #[test]
    fn explicit_times() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        std::fs::write(&f, "").expect("write");
        let params = json!({"path": f, "modification_time": "202001021530.45"});
        converge(&File, &params);
        let m = std::fs::metadata(&f).map(|m| m.mtime()).unwrap_or(0);
        // 2020-01-02 15:30:45 in the machine's zone; within a day of UTC.
        assert!((m - 1_577_979_045).abs() < 86_400, "{m}");
        assert!(File
            .check_params(&json!({"path": f, "modification_time_format": "%s"}))
            .is_ok());
        let mut h = host();
        assert!(DynModule::plan(
            &File,
            &json!({"path": f, "modification_time": "yesterday"}),
            &mut h
        )
        .is_err());
    }

    #[test]
    fn state_file_on_missing_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = DynModule::plan(&File, &json!({"path": path_in(&dir, "x")}), &mut host())
            .expect_err("absent");
        assert!(err.to_string().contains("is absent, cannot continue"));
        let err = DynModule::plan(
            &File,
            &json!({"path": path_in(&dir, "x"), "owner": "no-such-user-x", "state": "touch"}),
            &mut host(),
        )
        .expect_err("no user");
        assert!(err.to_string().contains("failed to look up user"));
    }

    #[test]
    fn symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = path_in(&dir, "target");
        std::fs::write(&t, "x").expect("write");
        let l = path_in(&dir, "link");
        let params = json!({"src": "target", "dest": l, "state": "link"});
        let (_, out) = converge(&File, &params);
        assert_eq!(std::fs::read_link(&l).ok(), Some("target".into()));
        assert_eq!(get(&out.result, "state"), "link");
        assert_eq!(get(&out.result, "src"), "target");
        // Relink to another target.
        std::fs::write(path_in(&dir, "other"), "y").expect("write");
        let (first, _) = converge(&File, &json!({"src": "other", "path": l, "state": "link"}));
        assert!(first.changes[0].starts_with("relink"));
        // A missing src needs force: the plan says so (for check mode) and
        // applying refuses, creating no link.
        let missing = json!({"src": "nope", "path": path_in(&dir, "l2"), "state": "link"});
        let plan = DynModule::plan(&File, &missing, &mut host()).expect("plan");
        assert!(plan
            .changes
            .iter()
            .any(|c| c.contains("does not exist yet")));
        let err = DynModule::apply(&File, &missing, plan, &mut host()).expect_err("refused");
        assert!(err.to_string().contains("force=yes"), "{err}");
        assert!(std::fs::symlink_metadata(path_in(&dir, "l2")).is_err());
        let forced =
            json!({"src": "nope", "path": path_in(&dir, "l2"), "state": "link", "force": true});
        converge(&File, &forced);
        // Replacing a regular file needs force too.
        let plain = path_in(&dir, "plain");
        std::fs::write(&plain, "z").expect("write");
        let p = json!({"src": t, "path": plain, "state": "link"});
        assert!(DynModule::plan(&File, &p, &mut host()).is_err());
        let p = json!({"src": t, "path": plain, "state": "link", "force": "yes"});
        converge(&File, &p);
        assert_eq!(std::fs::read_link(&plain).ok(), Some(t.clone().into()));
    }

    #[test]
    fn existing_link_without_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = path_in(&dir, "target");
        std::fs::write(&t, "x").expect("write");
        let l = path_in(&dir, "link");
        std::os::unix::fs::symlink("target", &l).expect("symlink");
        // Following (the default): the target gets the mode.
        converge(&File, &json!({"path": l, "mode": "0600"}));
        assert_eq!(mode_of(&t), 0o600);
        // Not following: the link itself gets the owner, and keeps its target.
        let (_, out) = converge(
            &File,
            &json!({"path": l, "owner": "nobody", "follow": false}),
        );
        assert_eq!(get(&out.result, "state"), "link");
        assert_eq!(std::fs::read_link(&l).ok(), Some("target".into()));
        let uid = |p: &str| std::fs::symlink_metadata(p).map(|m| m.uid()).unwrap_or(0);
        assert_eq!((uid(&l), uid(&t)), (65534, 0));
    }

    #[test]
    fn hard_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = path_in(&dir, "target");
        std::fs::write(&t, "x").expect("write");
        let h = path_in(&dir, "hard");
        converge(&File, &json!({"src": "target", "path": h, "state": "hard"}));
        let ino = |p: &str| std::fs::metadata(p).map(|m| m.ino()).unwrap_or(0);
        assert_eq!(ino(&t), ino(&h));
    }

    #[test]
    fn absent_removes_recursively() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = path_in(&dir, "tree");
        std::fs::create_dir_all(format!("{d}/x/y")).expect("mkdir");
        std::fs::write(format!("{d}/x/y/f"), "1").expect("write");
        let params = json!({"path": d, "state": "absent"});
        let first = plan(&File, &params);
        assert!(std::path::Path::new(&d).exists());
        assert_eq!(first.changes, [format!("remove directory {d}")]);
        let out = apply(&File, &params, first);
        assert_eq!(get(&out.result, "state"), "absent");
        assert!(!std::path::Path::new(&d).exists());
        assert!(plan(&File, &params).is_empty());
    }

    #[test]
    fn recurse_sets_everything_inside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = path_in(&dir, "tree");
        std::fs::create_dir_all(format!("{d}/sub")).expect("mkdir");
        std::fs::write(format!("{d}/sub/f"), "1").expect("write");
        std::fs::set_permissions(format!("{d}/sub/f"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        let params = json!({"path": d, "state": "directory", "recurse": true,
            "owner": "nobody", "group": "nogroup", "mode": "u=rwX,g=rX,o="});
        converge(&File, &params);
        assert_eq!(mode_of(&format!("{d}/sub/f")), 0o640);
        assert_eq!(mode_of(&format!("{d}/sub")), 0o750);
        let uid = std::fs::metadata(format!("{d}/sub/f"))
            .map(|m| m.uid())
            .unwrap_or(0);
        assert_eq!(uid, 65534);
        // Numeric mode, recursively, on files and directories alike.
        converge(
            &File,
            &json!({"path": d, "state": "directory", "recurse": "yes", "mode": "0700"}),
        );
        assert_eq!(mode_of(&format!("{d}/sub/f")), 0o700);
    }

    /// Five hosts creating `parent/<host>/a/b` at once race on `parent`:
    /// each plans it missing, and all but one `mkdir` find it made by
    /// another. A directory someone else created meanwhile is fine.
    #[test]
    fn concurrent_creates_under_one_parent_do_not_race() {
        let dir = tempfile::tempdir().expect("tempdir");
        for round in 0..20 {
            let parent = path_in(&dir, &format!("r{round}"));
            // Every host plans first, while nothing exists yet, so each
            // apply holds the stale "create every component" plan.
            let plans: Vec<(Value, Plan)> = (0..5)
                .map(|h| {
                    let p = json!({"path": format!("{parent}/h{h}/a/b"), "state": "directory"});
                    let pl = plan(&File, &p);
                    (p, pl)
                })
                .collect();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(plans.len()));
            let handles: Vec<_> = plans
                .into_iter()
                .map(|(p, pl)| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        DynModule::apply(&File, &p, pl, &mut host()).map(|_| ())
                    })
                })
                .collect();
            for h in handles {
                let res = h.join().expect("thread");
                assert!(res.is_ok(), "round {round}: {res:?}");
            }
            for h in 0..5 {
                assert!(std::path::Path::new(&format!("{parent}/h{h}/a/b")).is_dir());
            }
        }
    }

    #[test]
    fn components_and_parents() {
        assert_eq!(components("/a/b/"), ["/a", "/a/b"]);
        assert_eq!(components("a//b"), ["a", "a//b"]);
        assert_eq!(parent_dir("/x"), "/");
        assert_eq!(parent_dir("x"), ".");
        assert_eq!(parent_dir("/x/y"), "/x");
    }
}
