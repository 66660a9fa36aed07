//! `copy` of a directory: a controller directory the engine passed as a
//! tree (`_tree`), or with `remote_src` a directory on the host.
//!
//! Controller tree, as Ansible's copy action does it file by file: `src`
//! without a trailing slash lands as `dest/NAME/...`, with one its contents
//! land in `dest/`. Each file is written when its SHA-1 differs (or it is a
//! symlink), else its owner, group and `mode` are set; missing directories
//! are created (`directory_mode`, owner and group applied to the new ones);
//! the source's subdirectories get `directory_mode`, owner and group on
//! every run, as Ansible's file module does. One probe (stats and
//! checksums of every path), then one script that writes every changed
//! file from stdin.
//!
//! `remote_src`, as Ansible's copy module: files that differ or are
//! missing are copied with the source's mode (new subdirectories whole,
//! with their modes and times), nothing is deleted, `owner`/`group` are
//! applied recursively to the target directory and `mode` to the
//! destination Ansible reports. One probe, one script.

use std::collections::BTreeSet;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::copy::CopyParams;
use crate::params::{mode_str, Mode};
use crate::probe::{
    check_principals, file_result, parse_stat, principals_snippet, sha1_snippet, stat_snippet,
    tagged, FileStat, Kind, WantedAttrs,
};
use crate::shell_quote::quote;
use crate::{Host, HostError, ModuleError, Outcome, Plan};

/// One entry of a controller directory, as the engine passes it.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TreeEntry {
    /// The path under `dest`, `/`-separated (`NAME/sub/file` for a `src`
    /// without a trailing slash).
    pub path: String,
    /// A directory (no content).
    #[serde(default)]
    pub dir: bool,
    /// A file's content, base64.
    #[serde(default)]
    pub b64: Option<String>,
    /// The controller file's permission bits (for `mode: preserve`).
    #[serde(default)]
    pub mode: Option<u32>,
}

fn join_dest(dest: &str, rel: &str) -> String {
    format!("{}/{rel}", dest.trim_end_matches('/'))
}

fn parent_of(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

fn failed(action: &'static str, out: &crate::ExecOutput) -> ModuleError {
    ModuleError::Host(HostError::Command {
        action,
        rc: out.rc,
        stderr: out.stderr_str(),
    })
}

/// A file the apply writes.
#[derive(Debug, Serialize, Deserialize)]
struct Write {
    /// Index into the tree.
    entry: usize,
    path: String,
    /// The mode to set; `None`: keep the replaced file's, 0644 for a new one.
    mode: Option<u32>,
}

/// An existing path whose attributes the apply sets.
#[derive(Debug, Serialize, Deserialize)]
struct Attrs {
    path: String,
    mode: Option<u32>,
}

/// What the apply does for a controller tree.
#[derive(Debug, Serialize, Deserialize)]
struct TreeSteps {
    mkdirs: Vec<String>,
    writes: Vec<Write>,
    attrs: Vec<Attrs>,
    result: Map<String, Value>,
}

fn src_word(p: &CopyParams) -> Option<&str> {
    p.src_path.as_deref().or(p.src.as_deref())
}

/// Every directory the tree needs, in order, the destination's parents
/// included (missing ones are created, as Ansible's copy creates them).
fn needed_dirs(dest: &str, tree: &[TreeEntry]) -> Vec<String> {
    let mut needed = BTreeSet::new();
    let mut d = dest;
    loop {
        needed.insert(d.to_string());
        match parent_of(d) {
            Some(up) => d = up,
            None => break,
        }
    }
    for e in tree {
        let full = join_dest(dest, &e.path);
        let mut cur = if e.dir {
            Some(full.as_str())
        } else {
            parent_of(&full)
        };
        while let Some(c) = cur.filter(|c| c.len() > dest.len()) {
            needed.insert(c.to_string());
            cur = parent_of(c);
        }
    }
    needed.into_iter().collect()
}

/// Plan a controller directory copy.
pub(super) fn plan_controller(
    p: &CopyParams,
    tree: &[TreeEntry],
    host: &mut dyn Host,
) -> Result<Plan, ModuleError> {
    if p.validate.is_some() || p.backup {
        return Err(ModuleError::failed(
            "validate and backup are not supported when copying a controller directory",
        ));
    }
    let dest = p.dest.trim_end_matches('/').to_string();
    let dest = if dest.is_empty() { "/".into() } else { dest };
    let files: Vec<(usize, &TreeEntry)> = tree.iter().enumerate().filter(|(_, e)| !e.dir).collect();
    let needed = needed_dirs(&dest, tree);
    let dir_want = WantedAttrs {
        owner: p.owner.clone(),
        group: p.group.clone(),
        mode: p.directory_mode.clone(),
    };
    let mut script = principals_snippet(&dir_want);
    for (k, dir) in needed.iter().enumerate() {
        script.push_str(&stat_snippet(&format!("D{k}"), &quote(dir), true));
    }
    for (i, e) in &files {
        let w = quote(&join_dest(&dest, &e.path));
        script.push_str(&stat_snippet(&format!("F{i}"), &w, false));
        script.push_str(&sha1_snippet(&format!("H{i}"), &w));
    }
    let out = host.run(&script, None)?;
    let text = out.stdout_str();
    check_principals(&text, &dir_want)?;

    let mut plan = Plan::default();
    let mut mkdirs = Vec::new();
    for (k, dir) in needed.iter().enumerate() {
        match parse_stat(&text, &format!("D{k}"))? {
            None => {
                plan.changes.push(format!("create directory {dir}"));
                mkdirs.push(dir.clone());
            }
            Some(st) if st.kind != Kind::Dir => {
                return Err(ModuleError::failed(format!(
                    "{dir} exists and is not a directory"
                )));
            }
            Some(_) => {}
        }
    }
    let mut writes = Vec::new();
    let mut attrs = Vec::new();
    let mut single = None;
    for (i, e) in &files {
        let path = join_dest(&dest, &e.path);
        let st = parse_stat(&text, &format!("F{i}"))?;
        if st.as_ref().is_some_and(|s| s.kind == Kind::Dir) {
            return Err(ModuleError::failed(format!(
                "can not copy {} over the directory {path}",
                e.path
            )));
        }
        if st.is_some() && !p.force {
            continue;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(e.b64.as_deref().unwrap_or_default())
            .map_err(|err| ModuleError::failed(format!("_tree: {}: {err}", e.path)))?;
        let sum = crate::textfile::sha1_hex(&bytes);
        let want = WantedAttrs {
            owner: p.owner.clone(),
            group: p.group.clone(),
            mode: match &p.mode {
                Some(Mode::Preserve) => e.mode.map(Mode::Octal),
                other => other.clone(),
            },
        };
        let is_link = st.as_ref().is_some_and(|s| s.kind == Kind::Link);
        let differs = is_link || tagged(&text, &format!("H{i}")) != Some(sum.as_str());
        if files.len() == 1 {
            let mut r = file_result("dest", &path, st.as_ref().filter(|_| !differs));
            r.insert("checksum".into(), json!(sum));
            r.insert("size".into(), json!(bytes.len()));
            single = Some(r);
        }
        if differs {
            plan.changes.push(match &st {
                Some(_) => format!("update content of {path}"),
                None => format!("create {path}"),
            });
            let current = st.as_ref().filter(|_| !is_link).map(|s| s.mode);
            let mode = want
                .mode
                .as_ref()
                .and_then(|m| m.resolve(current.or(Some(0o644)), false));
            writes.push(Write {
                entry: *i,
                path,
                mode,
            });
        } else if let Some(st) = &st {
            let (changes, mode) = want.diff(&path, st);
            if !changes.is_empty() {
                plan.changes.extend(changes);
                attrs.push(Attrs { path, mode });
            }
        }
    }
    // The source's subdirectories: directory_mode, owner and group on
    // every run (the top directory only when it is created).
    for e in tree.iter().filter(|e| e.dir) {
        let path = join_dest(&dest, &e.path);
        let Some(k) = needed.iter().position(|n| *n == path) else {
            continue;
        };
        if let Some(st) = parse_stat(&text, &format!("D{k}"))? {
            let (changes, mode) = dir_want.diff(&path, &st);
            if !changes.is_empty() {
                plan.changes.extend(changes);
                attrs.push(Attrs { path, mode });
            }
        }
    }
    let changed = !plan.changes.is_empty();
    let mut result = match single {
        Some(r) => r,
        None => {
            let mut r = Map::new();
            r.insert("dest".into(), json!(format!("{dest}/").replace("//", "/")));
            r
        }
    };
    if let Some(s) = src_word(p) {
        result.insert("src".into(), json!(s));
    }
    result.insert("changed".into(), json!(changed));
    plan.result = result.clone();
    plan.keep_state(&json!({
        "tree": "controller",
        "steps": TreeSteps {
            mkdirs,
            writes,
            attrs,
            result,
        }
    }))?;
    Ok(plan)
}

/// Write every planned file, directory and attribute in one script; the
/// files' bytes follow one another on stdin.
pub(super) fn apply_controller(
    p: &CopyParams,
    tree: &[TreeEntry],
    plan: &Plan,
    host: &mut dyn Host,
) -> Result<Outcome, ModuleError> {
    let steps: TreeSteps = serde_json::from_value(plan.state["steps"].clone())
        .map_err(|e| ModuleError::failed(format!("copy: apply without a plan: {e}")))?;
    let want = WantedAttrs {
        owner: p.owner.clone(),
        group: p.group.clone(),
        mode: None,
    };
    let mut script =
        String::from("set -e\nt=\ntrap 'rm -f \"$t\"' EXIT; trap 'exit 143' HUP INT TERM\n");
    let dir_mode = p
        .directory_mode
        .as_ref()
        .and_then(|m| m.resolve(None, true));
    for d in &steps.mkdirs {
        let w = quote(d);
        script.push_str(&format!("mkdir -- {w}\n"));
        script.push_str(&want.apply_script(&w, dir_mode, false));
    }
    let mut stdin = Vec::new();
    for wr in &steps.writes {
        let e = tree
            .get(wr.entry)
            .ok_or_else(|| ModuleError::failed("copy: the tree changed since the plan"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(e.b64.as_deref().unwrap_or_default())
            .map_err(|err| ModuleError::failed(format!("_tree: {}: {err}", e.path)))?;
        let w = quote(&wr.path);
        script.push_str(&format!(
            "t=$(mktemp \"$(dirname -- {w})/.herd.XXXXXX\")\nhead -c {n} > \"$t\"\n\
             test \"$(wc -c < \"$t\")\" -eq {n} || {{ echo 'the file arrived incomplete' >&2; exit 74; }}\n\
             if [ -e {w} ] && [ ! -L {w} ]; then chown --reference={w} \"$t\" 2>/dev/null || true; fi\n",
            n = bytes.len()
        ));
        script.push_str(&want.apply_script("\"$t\"", wr.mode, false));
        if wr.mode.is_none() {
            script.push_str(&format!(
                "if [ -e {w} ] && [ ! -L {w} ]; then chmod --reference={w} \"$t\"; else chmod 0644 \"$t\"; fi\n"
            ));
        }
        script.push_str(&format!("mv -f -- \"$t\" {w}\n"));
        stdin.extend_from_slice(&bytes);
    }
    for a in &steps.attrs {
        script.push_str(&want.apply_script(&quote(&a.path), a.mode, false));
    }
    script.push_str("trap - EXIT\n");
    let out = host.run(&script, Some(&stdin))?;
    if !out.success() {
        return Err(failed("copy a directory", &out));
    }
    Ok(Outcome::changed_with_result_msg(steps.result))
}

/// What the apply does for a `remote_src` directory.
#[derive(Debug, Serialize, Deserialize)]
struct RemoteSteps {
    /// The directory the files land in.
    target: String,
    /// Copy the whole source as `target` (it does not exist).
    whole: bool,
    /// Create `target` first and copy into it.
    mkdir: bool,
    /// Subdirectories to copy whole (relative).
    new_dirs: Vec<String>,
    /// Files to copy (relative): missing or different.
    files: Vec<String>,
    /// Apply owner/group recursively.
    chown: bool,
    /// The path `mode` goes on, and the mode.
    mode: Option<(String, u32)>,
    result: Map<String, Value>,
}

/// Plan a `remote_src` copy whose `src` is a directory.
pub(super) fn plan_remote(
    p: &CopyParams,
    src: &str,
    host: &mut dyn Host,
) -> Result<Plan, ModuleError> {
    let trailing = src.ends_with('/');
    let s = src.trim_end_matches('/');
    let s = if s.is_empty() { "/" } else { s };
    let d = p.dest.trim_end_matches('/');
    let d = if d.is_empty() { "/" } else { d };
    let base = s.rsplit('/').next().unwrap_or(s);
    let target = if trailing {
        d.to_string()
    } else {
        join_dest(d, base)
    };
    let (sw, dw, tw) = (quote(s), quote(d), quote(&target));
    let want = WantedAttrs {
        owner: p.owner.clone(),
        group: p.group.clone(),
        mode: p.mode.clone(),
    };
    let mut script = principals_snippet(&want);
    script.push_str(&format!(
        "S={sw}; T={tw}\n\
         if [ -d {dw} ]; then echo DDIR yes; elif [ -e {dw} ]; then echo DOTHER yes; fi\n\
         if [ -d \"$T\" ]; then echo TDIR yes\n\
         (cd \"$S\" && find . -mindepth 1 -type d -printf '%P\\n') | while IFS= read -r r; do \
         [ -d \"$T/$r\" ] || echo \"NEWDIR $r\"; done\n\
         (cd \"$S\" && find . -mindepth 1 ! -type d -printf '%P\\n') | while IFS= read -r r; do \
         if [ ! -e \"$T/$r\" ] && [ ! -L \"$T/$r\" ]; then echo \"NEW $r\"; \
         elif ! cmp -s -- \"$S/$r\" \"$T/$r\"; then echo \"DIFF $r\"; fi; done\n"
    ));
    if let Some(o) = &p.owner {
        script.push_str(&format!(
            "[ -z \"$(find \"$T\" ! -user {} -print -quit 2>/dev/null)\" ] || echo CHOWN yes\n",
            quote(o)
        ));
    }
    if let Some(g) = &p.group {
        script.push_str(&format!(
            "[ -z \"$(find \"$T\" ! -group {} -print -quit 2>/dev/null)\" ] || echo CHOWN yes\n",
            quote(g)
        ));
    }
    script.push_str("fi\n");
    script.push_str(&stat_snippet("DST", &dw, true));
    script.push_str(&stat_snippet("TST", &tw, true));
    let out = host.run(&script, None)?;
    let text = out.stdout_str();
    check_principals(&text, &want)?;
    if tagged(&text, "DOTHER").is_some() {
        return Err(ModuleError::failed(format!(
            "Cannot copy the directory {s} over {d}: not a directory"
        )));
    }
    let d_dir = tagged(&text, "DDIR").is_some();
    let t_dir = tagged(&text, "TDIR").is_some();
    let list = |tag: &str| -> Vec<String> {
        crate::account::tagged_all(&text, tag)
            .map(str::to_string)
            .collect()
    };
    let mut new_dirs = list("NEWDIR");
    new_dirs.sort();
    // A new directory is copied whole: what lies under it needs no step.
    let under_new = |r: &str| {
        new_dirs.iter().any(|n| {
            r.len() > n.len() && r.starts_with(n.as_str()) && r.as_bytes()[n.len()] == b'/'
        })
    };
    let top_new: Vec<String> = new_dirs.iter().filter(|n| !under_new(n)).cloned().collect();
    let mut files: Vec<String> = list("NEW")
        .into_iter()
        .chain(list("DIFF"))
        .filter(|r| !under_new(r))
        .collect();
    files.sort();
    let mut plan = Plan::default();
    let whole = !t_dir && (trailing || d_dir);
    let mkdir = !t_dir && !whole;
    if whole {
        plan.changes.push(format!("copy {s} to {target}"));
    } else if mkdir {
        plan.changes
            .push(format!("create directory {target} and copy {s} into it"));
    } else {
        for n in &top_new {
            plan.changes
                .push(format!("copy directory {}", join_dest(&target, n)));
        }
        for f in &files {
            plan.changes.push(format!("copy {}", join_dest(&target, f)));
        }
    }
    let owned = p.owner.is_some() || p.group.is_some();
    let chown = owned && (!t_dir || tagged(&text, "CHOWN").is_some());
    if chown && t_dir {
        plan.changes
            .push(format!("owner/group of everything under {target}"));
    }
    // Ansible sets `mode` on the destination it reports: the target when
    // `dest` was a directory, else `dest` itself.
    let mode_path = if d_dir { target.clone() } else { d.to_string() };
    let mode_st = if d_dir {
        parse_stat(&text, "TST")?
    } else {
        parse_stat(&text, "DST")?
    };
    let mode = match &p.mode {
        Some(Mode::Preserve) | None => None,
        Some(m) => {
            let cur = mode_st.as_ref().map(|s| s.mode);
            m.resolve(cur.or(Some(0o755)), true)
                .map(|m| (mode_path.clone(), m))
        }
    };
    if let Some((path, m)) = &mode {
        if mode_st.as_ref().is_none_or(|st: &FileStat| st.mode != *m) {
            plan.changes
                .push(format!("mode {} on {path}", mode_str(*m)));
        }
    }
    let mut result = Map::new();
    let reported = if d_dir {
        if trailing {
            format!("{d}/").replace("//", "/")
        } else {
            target.clone()
        }
    } else {
        d.to_string()
    };
    result.insert("dest".into(), json!(reported));
    result.insert("src".into(), json!(src));
    result.insert("checksum".into(), Value::Null);
    result.insert("md5sum".into(), Value::Null);
    if let Some(st) = &mode_st {
        for (k, v) in file_result("dest", &reported, Some(st)) {
            result.entry(k).or_insert(v);
        }
    }
    result.insert("changed".into(), json!(!plan.changes.is_empty()));
    plan.result = result.clone();
    plan.keep_state(&json!({
        "tree": "remote",
        "steps": RemoteSteps {
            target,
            whole,
            mkdir,
            new_dirs: top_new,
            files,
            chown,
            mode,
            result,
        }
    }))?;
    Ok(plan)
}

/// Copy on the host as planned, in one script.
pub(super) fn apply_remote(
    p: &CopyParams,
    src: &str,
    plan: &Plan,
    host: &mut dyn Host,
) -> Result<Outcome, ModuleError> {
    let steps: RemoteSteps = serde_json::from_value(plan.state["steps"].clone())
        .map_err(|e| ModuleError::failed(format!("copy: apply without a plan: {e}")))?;
    let s = src.trim_end_matches('/');
    let s = if s.is_empty() { "/" } else { s };
    let (sw, tw) = (quote(s), quote(&steps.target));
    let mut script = String::from("set -e\n");
    // As Python's copytree: modes and times kept; symlinks copied as links.
    let tree_copy = "cp -R --preserve=mode,timestamps --";
    if steps.whole {
        script.push_str(&format!("{tree_copy} {sw} {tw}\n"));
    } else {
        if steps.mkdir {
            script.push_str(&format!("mkdir -p -- {tw}\n"));
            script.push_str(&format!("{tree_copy} {sw}/. {tw}/\n"));
        }
        for n in &steps.new_dirs {
            script.push_str(&format!(
                "{tree_copy} {} {}\n",
                quote(&join_dest(s, n)),
                quote(&join_dest(&steps.target, n))
            ));
        }
        // As copyfile + copymode: the content and the source's mode.
        for f in &steps.files {
            script.push_str(&format!(
                "cp --preserve=mode -- {} {}\n",
                quote(&join_dest(s, f)),
                quote(&join_dest(&steps.target, f))
            ));
        }
    }
    if steps.chown {
        match (&p.owner, &p.group) {
            (Some(o), Some(g)) => script.push_str(&format!(
                "chown -R -- {} {tw}\n",
                quote(&format!("{o}:{g}"))
            )),
            (Some(o), None) => script.push_str(&format!("chown -R -- {} {tw}\n", quote(o))),
            (None, Some(g)) => script.push_str(&format!("chgrp -R -- {} {tw}\n", quote(g))),
            (None, None) => {}
        }
    }
    if let Some((path, m)) = &steps.mode {
        script.push_str(&format!("chmod {} -- {}\n", mode_str(*m), quote(path)));
    }
    let out = host.run(&script, None)?;
    if !out.success() {
        return Err(failed("copy a directory on the host", &out));
    }
    Ok(Outcome::changed_with_result_msg(steps.result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::copy::Copy;
    use crate::testing::{apply, converge, get, plan};
    use std::os::unix::fs::PermissionsExt;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn mode_of(p: &std::path::Path) -> u32 {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0)
    }

    fn tree() -> Value {
        json!([
            {"path": "site/a.txt", "b64": b64("a\n"), "mode": 0o600},
            {"path": "site/sub", "dir": true},
            {"path": "site/sub/b.txt", "b64": b64("b\n"), "mode": 0o644},
            {"path": "site/empty", "dir": true},
        ])
    }

    #[test]
    fn a_controller_tree_converges_with_modes_and_check_mode_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("out");
        let params = json!({"dest": dest.display().to_string(), "_tree": tree(),
            "_src_path": "/pb/files/site", "mode": "0640", "directory_mode": "0750"});
        // Check mode: the plan names every change and the host is untouched.
        let first = plan(&Copy, &params);
        assert!(
            first.changes.iter().any(|c| c.ends_with("out/site/sub")),
            "{:?}",
            first.changes
        );
        assert!(first
            .changes
            .iter()
            .any(|c| c.starts_with("create ") && c.ends_with("b.txt")));
        assert!(!dest.exists());
        let (_, out) = converge(&Copy, &params);
        assert!(out.changed);
        assert_eq!(
            get(&out.result, "dest"),
            &json!(format!("{}/", dest.display()))
        );
        assert_eq!(get(&out.result, "src"), &json!("/pb/files/site"));
        let sub = dest.join("site/sub");
        assert_eq!(
            std::fs::read_to_string(sub.join("b.txt")).ok().as_deref(),
            Some("b\n")
        );
        assert_eq!(mode_of(&sub.join("b.txt")), 0o640);
        assert_eq!(mode_of(&sub), 0o750);
        assert_eq!(mode_of(&dest.join("site/empty")), 0o750);
        // One file changed on the host: only it is written again; a
        // subdirectory's mode is put back on every run.
        std::fs::write(dest.join("site/a.txt"), "changed\n").expect("write");
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let again = plan(&Copy, &params);
        assert_eq!(again.changes.len(), 2, "{:?}", again.changes);
        apply(&Copy, &params, again);
        assert!(plan(&Copy, &params).is_empty());
        assert_eq!(
            std::fs::read_to_string(dest.join("site/a.txt"))
                .ok()
                .as_deref(),
            Some("a\n")
        );
        // `mode: preserve` takes each controller file's mode.
        let params = json!({"dest": dir.path().join("p/").display().to_string(),
            "_tree": tree(), "mode": "preserve"});
        converge(&Copy, &params);
        assert_eq!(mode_of(&dir.path().join("p/site/a.txt")), 0o600);
        // Without `mode`, a new file gets 0644 and a replaced one keeps its mode.
        let params = json!({"dest": dir.path().join("n").display().to_string(), "_tree": tree()});
        converge(&Copy, &params);
        assert_eq!(mode_of(&dir.path().join("n/site/a.txt")), 0o644);
    }

    #[test]
    fn one_file_reports_as_a_file_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let params = json!({"dest": dir.path().display().to_string(),
            "_tree": [{"path": "x.conf", "b64": b64("x\n"), "mode": 0o644}]});
        let (_, out) = converge(&Copy, &params);
        assert_eq!(
            get(&out.result, "dest"),
            &json!(dir.path().join("x.conf").display().to_string())
        );
        assert_eq!(
            get(&out.result, "checksum"),
            &json!(crate::textfile::sha1_hex(b"x\n"))
        );
        let again = plan(&Copy, &params);
        assert_eq!(get(&again.result, "changed"), &json!(false));
    }

    fn remote_source(dir: &std::path::Path) -> std::path::PathBuf {
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("sub/deep")).expect("mkdir");
        std::fs::write(src.join("a.txt"), "a\n").expect("write");
        std::fs::write(src.join("sub/deep/c.sh"), "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(
            src.join("sub/deep/c.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        src
    }

    #[test]
    fn a_remote_directory_with_and_without_a_trailing_slash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = remote_source(dir.path());
        let dest = dir.path().join("dest");
        std::fs::create_dir(&dest).expect("mkdir");
        // Without the slash: the directory itself lands in dest.
        let params = json!({"src": src.display().to_string(), "dest": dest.display().to_string(),
            "remote_src": true, "mode": "0700"});
        let first = plan(&Copy, &params);
        assert!(!dest.join("src").exists(), "check mode changes nothing");
        assert!(!first.is_empty());
        let out = apply(&Copy, &params, first);
        assert!(plan(&Copy, &params).is_empty());
        assert_eq!(
            get(&out.result, "dest"),
            &json!(dest.join("src").display().to_string())
        );
        assert_eq!(mode_of(&dest.join("src/sub/deep/c.sh")), 0o755);
        assert_eq!(mode_of(&dest.join("src")), 0o700);
        // A changed and a new file on the source: just those are copied,
        // and an extra file at the destination stays.
        std::fs::write(src.join("a.txt"), "A\n").expect("write");
        std::fs::write(src.join("sub/new.txt"), "n\n").expect("write");
        std::fs::write(dest.join("src/extra"), "e\n").expect("write");
        let (again, _) = converge(&Copy, &params);
        assert_eq!(again.changes.len(), 2, "{:?}", again.changes);
        assert_eq!(
            std::fs::read_to_string(dest.join("src/a.txt"))
                .ok()
                .as_deref(),
            Some("A\n")
        );
        assert!(dest.join("src/extra").exists());
        // With the slash: the contents, into a dest that does not exist yet.
        let into = dir.path().join("into");
        let params = json!({"src": format!("{}/", src.display()), "dest": into.display().to_string(),
            "remote_src": true, "owner": "root"});
        let (_, out) = converge(&Copy, &params);
        assert!(out.changed);
        assert!(into.join("sub/deep/c.sh").exists() && into.join("a.txt").exists());
        assert_eq!(get(&out.result, "dest"), &json!(into.display().to_string()));
    }
}
