//! `git`: a checkout of a repository at a version (branch, tag, commit or
//! the remote's `HEAD`), with git on the host.
//!
//! The plan is one probe: the clone's state (`HEAD`, the remote's URL,
//! local modifications) and `git ls-remote --symref` of the repository,
//! from which the version resolves to a commit as Ansible resolves it (a
//! branch, else a tag, peeled, else the version taken as a commit). The
//! task changes when there is no clone yet, when `HEAD` is not that
//! commit, or when the remote's URL differs. Apply is one script: clone
//! (or fetch, after `git reset --hard` with `force`), then check out the
//! planned commit (on its branch for a branch, detached for a tag or a
//! commit) and update submodules.
//!
//! Differences from Ansible: `verify_commit`, `gpg_allowlist`, `archive`,
//! `separate_git_dir` and `track_submodules` are refused; a change of a
//! submodule alone is not detected by the plan.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::params::{de_bool, de_opt_bool, de_opt_string, de_opt_u64, yes};
use crate::probe::tagged;
use crate::shell_quote::{quote, quote_path};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

fn default_version() -> String {
    "HEAD".into()
}
fn default_remote() -> String {
    "origin".into()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `git`: what `herd doc` shows, and what the parser takes.
pub struct GitParams {
    /// The repository: a URL, `user@host:path`, or a path on the host.
    #[serde(alias = "name")]
    pub repo: String,
    /// Where the checkout goes; required unless `clone: false`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub dest: Option<String>,
    /// A branch, a tag, a commit, or `HEAD` (the remote's default branch).
    #[serde(default = "default_version", deserialize_with = "de_version")]
    #[schemars(with = "String")]
    pub version: String,
    /// The name of the remote.
    #[serde(default = "default_remote")]
    pub remote: String,
    /// More refs to fetch (`refs/pull/*/head`), passed to `git fetch`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub refspec: Option<String>,
    /// A local repository to borrow objects from when cloning (`git clone --reference`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub reference: Option<String>,
    /// Discard local modifications of tracked files (`git reset --hard`) instead of failing.
    #[serde(default, deserialize_with = "de_bool")]
    pub force: bool,
    /// Clone and fetch only this many commits of history.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub depth: Option<u64>,
    /// Clone when `dest` has no repository; with `false` only the remote's revision is read.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub clone: bool,
    /// Fetch and check out the version in an existing clone; with `false` it is left as it is.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub update: bool,
    /// Refused when true: commit signatures are not verified.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub verify_commit: Option<bool>,
    /// Refused when not empty: commit signatures are not verified.
    #[serde(default, alias = "gpg_whitelist")]
    pub gpg_allowlist: Option<Vec<String>>,
    /// Accept an unknown SSH host key (`StrictHostKeyChecking=no`).
    #[serde(default, deserialize_with = "de_bool")]
    pub accept_hostkey: bool,
    /// Accept a new (not a changed) SSH host key (`StrictHostKeyChecking=accept-new`).
    #[serde(default, deserialize_with = "de_bool")]
    pub accept_newhostkey: bool,
    /// The SSH private key on the host to fetch with.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub key_file: Option<String>,
    /// More `ssh` options for fetching (`-o Port=2222`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub ssh_opts: Option<String>,
    /// The git program to run.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub executable: Option<String>,
    /// A bare repository (no working tree).
    #[serde(default, deserialize_with = "de_bool")]
    pub bare: bool,
    /// Clone and update submodules too.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub recursive: bool,
    /// Clone only the history of the version's branch.
    #[serde(default, deserialize_with = "de_bool")]
    pub single_branch: bool,
    /// Refused when true: submodules are checked out at the commits the repository records.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub track_submodules: Option<bool>,
    /// The umask for the files written, as a quoted octal string (`"0022"`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub umask: Option<String>,
    /// Refused: archives of the checkout are not made.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub archive: Option<String>,
    /// Refused, as `archive`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub archive_prefix: Option<String>,
    /// Refused: the git directory is always inside `dest`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub separate_git_dir: Option<String>,
}

/// `version` as text: YAML may read `1.0` or `20240101` as a number.
fn de_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(de_opt_string(d)?.unwrap_or_else(default_version))
}

/// The `git` module.
pub struct Git;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Git::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

fn check_params(p: &GitParams) -> Result<(), ModuleError> {
    let refused = "not supported by herd";
    if p.verify_commit == Some(true) {
        return Err(invalid("verify_commit", refused));
    }
    if p.gpg_allowlist.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(invalid("gpg_allowlist", refused));
    }
    if p.track_submodules == Some(true) {
        return Err(invalid("track_submodules", refused));
    }
    for (field, v) in [
        ("archive", &p.archive),
        ("archive_prefix", &p.archive_prefix),
        ("separate_git_dir", &p.separate_git_dir),
    ] {
        if v.is_some() {
            return Err(invalid(field, refused));
        }
    }
    if p.accept_hostkey && p.accept_newhostkey {
        return Err(invalid(
            "accept_newhostkey",
            "mutually exclusive with accept_hostkey",
        ));
    }
    if let Some(u) = &p.umask {
        if u32::from_str_radix(u, 8).is_err() {
            return Err(ModuleError::failed("umask must be an octal integer"));
        }
    }
    if p.dest.is_none() && p.clone {
        return Err(ModuleError::failed(
            "the destination directory must be specified unless clone=no",
        ));
    }
    Ok(())
}

/// The repository as git is given it: a local path becomes a `file://` URL.
fn repo_url(p: &GitParams) -> String {
    if p.repo.starts_with('/') {
        format!("file://{}", p.repo)
    } else {
        p.repo.clone()
    }
}

/// Environment for every git command: a parsable locale, no prompts, and
/// the ssh options asked for.
fn env(p: &GitParams) -> String {
    let mut s = String::from(
        "export LANG=C LC_ALL=C LC_MESSAGES=C LC_CTYPE=C LANGUAGE=C GIT_TERMINAL_PROMPT=0\n",
    );
    let mut ssh: Vec<String> = Vec::new();
    if let Some(k) = &p.key_file {
        ssh.push(format!("-i {} -o IdentitiesOnly=yes", quote_path(k)));
    }
    if let Some(o) = &p.ssh_opts {
        ssh.push(o.clone());
    }
    let has = |o: &str| p.ssh_opts.as_deref().is_some_and(|s| s.contains(o));
    if p.accept_hostkey && !has("StrictHostKeyChecking") {
        ssh.push("-o StrictHostKeyChecking=no".into());
    }
    if p.accept_newhostkey && !has("StrictHostKeyChecking") {
        ssh.push("-o StrictHostKeyChecking=accept-new".into());
    }
    if !ssh.is_empty() {
        s.push_str(&format!(
            "export GIT_SSH_COMMAND={}\n",
            quote(&format!("ssh {}", ssh.join(" ")))
        ));
    }
    if let Some(u) = &p.umask {
        s.push_str(&format!("umask {}\n", quote(u)));
    }
    s.push_str(&format!(
        "g={}\n",
        p.executable
            .as_deref()
            .map_or_else(|| "git".to_string(), quote_path)
    ));
    s
}

/// What the version resolves to on the remote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Target {
    /// A branch (`HEAD` resolves to the remote's default branch).
    Branch { name: String, sha: String },
    /// A tag or a commit: checked out detached.
    Detached { sha: String },
}

impl Target {
    fn sha(&self) -> &str {
        match self {
            Target::Branch { sha, .. } | Target::Detached { sha } => sha,
        }
    }
}

/// Resolve `version` in `git ls-remote --symref` output, as Ansible does:
/// `HEAD`, else a branch, else a tag (peeled), else a commit.
fn resolve(listing: &str, version: &str) -> Result<Target, ModuleError> {
    let mut refs: Vec<(&str, &str)> = Vec::new();
    let mut head_branch = None;
    for line in listing.lines() {
        if let Some(rest) = line.strip_prefix("ref: ") {
            if let Some((target, "HEAD")) = rest.split_once('\t') {
                head_branch = target.strip_prefix("refs/heads/");
            }
            continue;
        }
        if let Some((sha, name)) = line.split_once('\t') {
            refs.push((sha, name));
        }
    }
    let find = |name: &str| {
        refs.iter()
            .find(|(_, n)| *n == name)
            .map(|(s, _)| (*s).to_string())
    };
    if version == "HEAD" {
        let sha = find("HEAD").ok_or_else(|| {
            ModuleError::failed(format!("Could not determine remote revision for {version}"))
        })?;
        return Ok(match head_branch {
            Some(b) => Target::Branch {
                name: b.to_string(),
                sha,
            },
            None => Target::Detached { sha },
        });
    }
    if let Some(sha) = find(&format!("refs/heads/{version}")) {
        return Ok(Target::Branch {
            name: version.to_string(),
            sha,
        });
    }
    let peeled = find(&format!("refs/tags/{version}^{{}}"));
    if let Some(sha) = peeled.or_else(|| find(&format!("refs/tags/{version}"))) {
        return Ok(Target::Detached { sha });
    }
    let hex =
        version.len() >= 4 && version.len() <= 40 && version.bytes().all(|b| b.is_ascii_hexdigit());
    if hex {
        return Ok(Target::Detached {
            sha: version.to_ascii_lowercase(),
        });
    }
    Err(ModuleError::failed(format!(
        "Could not determine remote revision for {version}"
    )))
}

/// What the probe found.
struct Found {
    cloned: bool,
    head: Option<String>,
    /// The branch checked out, `None` when detached.
    branch: Option<String>,
    url: Option<String>,
    mods: bool,
    target: Target,
}

/// What apply does, kept in the plan.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Work {
    clone: bool,
    reset: bool,
    set_url: bool,
    target: Target,
}

fn git_dir_test(p: &GitParams, dest: &str) -> String {
    if p.bare {
        format!("[ -f {dest}/config ]")
    } else {
        format!("[ -f {dest}/.git/config ]")
    }
}

fn probe(p: &GitParams, host: &mut dyn Host) -> Result<Found, ModuleError> {
    let dest = p.dest.as_deref().map(quote_path);
    let mut s = env(p);
    s.push_str("command -v \"$g\" >/dev/null 2>&1 || { echo NOGIT; exit 0; }\n");
    if let Some(d) = &dest {
        s.push_str(&format!(
            "if {}; then echo CLONED\n\
             echo \"HEAD $(cd {d} && \"$g\" rev-parse HEAD 2>/dev/null)\"\n\
             echo \"URL $(cd {d} && \"$g\" config --get remote.{}.url)\"\n\
             echo \"BRANCH $(cd {d} && \"$g\" symbolic-ref -q --short HEAD)\"\n",
            git_dir_test(p, d),
            quote(&p.remote)
        ));
        if !p.bare {
            s.push_str(&format!(
                "(cd {d} && \"$g\" status --porcelain) | grep -qv '^??' && echo MODS\n"
            ));
        }
        s.push_str("fi\n");
    }
    s.push_str(&format!(
        "echo @@ls\n\"$g\" ls-remote --symref {} || exit 3\n",
        quote(&repo_url(p))
    ));
    let out = host.run(&s, None)?;
    let text = out.stdout_str();
    if text.lines().next() == Some("NOGIT") {
        return Err(ModuleError::failed(
            "Failed to find required executable \"git\" in paths",
        ));
    }
    if out.rc == 3 || !out.success() {
        return Err(ModuleError::failed(format!(
            "Failed to read the remote {}: {}",
            p.repo,
            out.stderr_str().trim_end()
        )));
    }
    let (head, listing) = text.split_once("@@ls\n").unwrap_or((&text, ""));
    let cloned = head.lines().any(|l| l == "CLONED");
    Ok(Found {
        cloned,
        head: tagged(head, "HEAD")
            .map(str::to_string)
            .filter(|s| !s.is_empty()),
        url: tagged(head, "URL")
            .map(str::to_string)
            .filter(|s| !s.is_empty()),
        branch: tagged(head, "BRANCH")
            .map(str::to_string)
            .filter(|s| !s.is_empty()),
        mods: head.lines().any(|l| l == "MODS"),
        target: resolve(listing, &p.version)?,
    })
}

/// Whether two repository addresses name the same repository (a local
/// path with or without `file://`, a trailing slash).
fn same_repo(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.strip_prefix("file://")
            .unwrap_or(s)
            .trim_end_matches('/')
            .to_string()
    };
    a == b || norm(a) == norm(b)
}

/// The checkout, after a clone or a fetch: the planned commit, on its
/// branch or detached, and the submodules.
fn checkout_script(p: &GitParams, t: &Target) -> String {
    if p.bare {
        return String::new();
    }
    let force = if p.force { " --force" } else { "" };
    let mut s = match t {
        Target::Branch { name, sha } => format!(
            "\"$g\" checkout --force -B {n} {sha}\n\"$g\" branch --set-upstream-to={r}/{n} {n} >/dev/null 2>&1 || true\n",
            n = quote(name),
            sha = quote(sha),
            r = quote(&p.remote)
        ),
        Target::Detached { sha } => format!("\"$g\" checkout --force --detach {}\n", quote(sha)),
    };
    if p.recursive {
        s.push_str(&format!(
            "if [ -f .gitmodules ]; then \"$g\" submodule update --init --recursive{force}; fi\n"
        ));
    }
    s
}

fn apply_script(p: &GitParams, w: &Work) -> String {
    let dest = quote_path(p.dest.as_deref().unwrap_or("."));
    let depth = p.depth.map(|d| format!(" --depth {d}")).unwrap_or_default();
    let remote = quote(&p.remote);
    let mut s = env(p);
    s.push_str("set -e\n");
    if w.clone {
        let mut args = format!("clone --origin {remote}{depth}");
        if let (Some(_), Target::Branch { name, .. }) = (p.depth, &w.target) {
            args.push_str(&format!(" --branch {}", quote(name)));
        } else if let (Some(_), Target::Detached { .. }, false) =
            (p.depth, &w.target, p.version == "HEAD")
        {
            if !p.version.bytes().all(|b| b.is_ascii_hexdigit()) {
                args.push_str(&format!(" --branch {}", quote(&p.version)));
            }
        }
        if p.single_branch {
            args.push_str(" --single-branch");
        }
        if p.bare {
            args.push_str(" --bare");
        }
        if let Some(r) = &p.reference {
            args.push_str(&format!(" --reference {}", quote_path(r)));
        }
        if p.recursive && !p.bare {
            args.push_str(" --recurse-submodules");
        }
        s.push_str(&format!(
            "\"$g\" {args} -- {} {dest}\ncd {dest}\n",
            quote(&repo_url(p))
        ));
        if let Some(r) = &p.refspec {
            s.push_str(&format!("\"$g\" fetch{depth} {remote} {}\n", quote(r)));
        }
    } else {
        s.push_str(&format!("cd {dest}\n"));
        if w.reset {
            s.push_str("\"$g\" reset --hard HEAD\n");
        }
        if w.set_url {
            s.push_str(&format!(
                "\"$g\" remote set-url {remote} {} 2>/dev/null || \"$g\" remote add {remote} {}\n",
                quote(&repo_url(p)),
                quote(&repo_url(p))
            ));
        }
        let heads = if p.bare {
            "+refs/heads/*:refs/heads/*".to_string()
        } else {
            format!("+refs/heads/*:refs/remotes/{}/*", p.remote)
        };
        let mut refspecs = format!("{} '+refs/tags/*:refs/tags/*'", quote(&heads));
        if let Some(r) = &p.refspec {
            refspecs.push_str(&format!(" {}", quote(r)));
        }
        s.push_str(&format!(
            "\"$g\" fetch --force{depth} {remote} {refspecs}\n"
        ));
    }
    s.push_str(&checkout_script(p, &w.target));
    s.push_str("echo \"AFTER $(\"$g\" rev-parse HEAD)\"\n");
    s
}

impl Module for Git {
    const NAME: &'static str = "git";
    const DOC_SHORT: &'static str =
        "Check out a git repository at a branch, tag or commit (git on the host).";
    const DOC_LONG: &'static str = r##"The version is resolved on the remote (`git ls-remote`) in the plan, so check mode reports `before` and `after` without fetching. A clone with local modifications of tracked files fails unless `force: true`, which discards them. A branch is checked out as a local branch tracking the remote's; a tag or commit is checked out detached. `update: false` leaves an existing clone as it is; `clone: false` only reads the remote's revision. Needs `git` on the host."##;
    const DOC_EXAMPLE: &'static str = r##"- name: The app at its release tag
  git:
    repo: https://git.example.com/shop/app.git
    dest: /srv/app
    version: v2.3.1
    depth: 1
- name: A private repository over SSH
  git:
    repo: git@git.example.com:ops/tools.git
    dest: /opt/tools
    key_file: /root/.ssh/deploy_tools
    accept_newhostkey: true
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        (
            "before",
            "the commit checked out before (null when there was no clone)",
        ),
        ("after", "the commit checked out after"),
        (
            "remote_url_changed",
            "whether the remote's URL was changed to `repo`",
        ),
        ("warnings", "always empty"),
        ("msg", "set when local modifications were discarded"),
    ];
    type Params = GitParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        check_params(p)?;
        let found = probe(p, host)?;
        let mut plan = Plan::default();
        let r = &mut plan.result;
        r.insert("warnings".into(), json!([]));
        r.insert("before".into(), json!(found.head));
        let target_sha = found.target.sha().to_string();
        if !found.cloned {
            r.insert("after".into(), json!(target_sha));
            plan.changes.push(if p.clone {
                format!(
                    "clone {} into {} at {}",
                    p.repo,
                    p.dest.as_deref().unwrap_or(""),
                    p.version
                )
            } else {
                format!("{} is at {target_sha} (clone=no)", p.repo)
            });
            plan.keep_state(&Work {
                clone: p.clone,
                reset: false,
                set_url: false,
                target: found.target,
            })?;
            return Ok(plan);
        }
        if !p.update {
            r.insert("after".into(), json!(found.head));
            return Ok(plan);
        }
        let dest = p.dest.clone().unwrap_or_default();
        if found.mods && !p.force {
            let mut result: Map<String, Value> = plan.result;
            result.insert("changed".into(), json!(false));
            return Err(ModuleError::Failed {
                msg: format!("Local modifications exist in the destination: {dest} (force=no)."),
                result,
            });
        }
        let url_changed = found
            .url
            .as_deref()
            .is_some_and(|u| !same_repo(u, &repo_url(p)) && !same_repo(u, &p.repo));
        plan.result
            .insert("remote_url_changed".into(), json!(url_changed));
        plan.result.insert("after".into(), json!(target_sha));
        let at_target = found
            .head
            .as_deref()
            .is_some_and(|h| h.starts_with(&target_sha));
        if found.mods {
            plan.changes
                .push(format!("discard local modifications in {dest}"));
        }
        if url_changed {
            plan.changes
                .push(format!("set remote {} to {}", p.remote, p.repo));
        }
        if !at_target {
            plan.changes.push(format!(
                "{dest}: {} -> {target_sha}",
                found.head.as_deref().unwrap_or("(none)")
            ));
        }
        // At the commit but not on the version's branch: Ansible checks
        // the branch out without counting a change (only commits count).
        if let (true, Target::Branch { name, .. }) = (plan.is_empty(), &found.target) {
            if !p.bare && found.branch.as_deref() != Some(name.as_str()) {
                plan.changes
                    .push(format!("{dest}: check out branch {name}"));
                plan.not_a_change = true;
            }
        }
        if !plan.is_empty() {
            plan.keep_state(&Work {
                clone: false,
                reset: found.mods,
                set_url: url_changed,
                target: found.target,
            })?;
        }
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let w: Work = plan.state_as()?;
        let plan_only_branch = plan.not_a_change;
        let mut result = plan.result.clone();
        if !p.clone {
            // Ansible reports the remote's revision as a change and
            // clones nothing.
            return Ok(Outcome::changed(result));
        }
        let out = host.run(&apply_script(p, &w), None)?;
        if !out.success() {
            let what = if w.clone { "clone" } else { "update" };
            return Err(ModuleError::Failed {
                msg: format!(
                    "Failed to {what} {} (rc={}): {}",
                    p.repo,
                    out.rc,
                    out.stderr_str().trim_end()
                ),
                result,
            });
        }
        if let Some(after) = tagged(&out.stdout_str(), "AFTER") {
            result.insert("after".into(), json!(after));
        }
        if w.reset {
            result.insert(
                "msg".into(),
                json!(format!(
                    "Local modifications exist in the destination: {}",
                    p.dest.as_deref().unwrap_or("")
                )),
            );
        }
        Ok(Outcome::changed_if(!plan_only_branch, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{converge, get, host, path_in, plan};
    use crate::DynModule;
    use std::process::Command;

    /// Run git in `dir` with a fixed identity; its stdout.
    fn git(dir: &str, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// An upstream repository with two commits on main, a tag on the
    /// first and a branch `dev`; returns its path and the two commits.
    fn upstream(dir: &tempfile::TempDir) -> (String, String, String) {
        let up = path_in(dir, "up");
        std::fs::create_dir_all(&up).expect("mkdir");
        git(&up, &["init", "-q"]);
        std::fs::write(format!("{up}/a"), "1\n").expect("write");
        git(&up, &["add", "a"]);
        git(&up, &["commit", "-qm", "one"]);
        let one = git(&up, &["rev-parse", "HEAD"]);
        git(&up, &["tag", "-a", "v1", "-m", "v1"]);
        git(&up, &["branch", "dev"]);
        std::fs::write(format!("{up}/a"), "2\n").expect("write");
        git(&up, &["commit", "-qam", "two"]);
        let two = git(&up, &["rev-parse", "HEAD"]);
        (up, one, two)
    }

    #[test]
    fn clones_head_then_follows_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (up, one, two) = upstream(&dir);
        let dest = path_in(&dir, "co");
        let params = json!({"repo": up, "dest": dest});
        // Check mode: the plan says what would happen and clones nothing.
        let pl = plan(&Git, &params);
        assert_eq!(get(&pl.result, "after"), two.as_str());
        assert_eq!(get(&pl.result, "before"), &Value::Null);
        assert!(!std::path::Path::new(&dest).exists());
        let (_, out) = converge(&Git, &params);
        assert_eq!(get(&out.result, "after"), two.as_str());
        assert_eq!(git(&dest, &["rev-parse", "--abbrev-ref", "HEAD"]), "main");
        // A tag: detached at its commit (the annotated tag peeled).
        let tag = json!({"repo": up, "dest": dest, "version": "v1"});
        let (first, _) = converge(&Git, &tag);
        assert_eq!(get(&first.result, "before"), two.as_str());
        assert_eq!(git(&dest, &["rev-parse", "HEAD"]), one);
        // A branch, and a commit.
        converge(&Git, &json!({"repo": up, "dest": dest, "version": "dev"}));
        assert_eq!(git(&dest, &["rev-parse", "--abbrev-ref", "HEAD"]), "dev");
        converge(
            &Git,
            &json!({"repo": up, "dest": dest, "version": &two[..10]}),
        );
        assert_eq!(git(&dest, &["rev-parse", "HEAD"]), two);
        // New upstream commits are fetched on the next run.
        std::fs::write(format!("{up}/a"), "3\n").expect("write");
        git(&up, &["commit", "-qam", "three"]);
        let three = git(&up, &["rev-parse", "HEAD"]);
        converge(&Git, &params);
        assert_eq!(git(&dest, &["rev-parse", "HEAD"]), three);
    }

    #[test]
    fn local_modifications_need_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (up, one, _) = upstream(&dir);
        let dest = path_in(&dir, "co");
        converge(&Git, &json!({"repo": up, "dest": dest, "depth": 1}));
        std::fs::write(format!("{dest}/a"), "mine\n").expect("write");
        let v1 = json!({"repo": up, "dest": dest, "version": "v1"});
        let err = DynModule::plan(&Git, &v1, &mut host()).expect_err("mods");
        assert_eq!(
            err.to_string(),
            format!("Local modifications exist in the destination: {dest} (force=no).")
        );
        let forced = json!({"repo": up, "dest": dest, "version": "v1", "force": true});
        let (_, out) = converge(&Git, &forced);
        assert!(get(&out.result, "msg")
            .as_str()
            .is_some_and(|m| m.starts_with("Local modifications")));
        assert_eq!(git(&dest, &["rev-parse", "HEAD"]), one);
        assert_eq!(
            std::fs::read_to_string(format!("{dest}/a")).ok().as_deref(),
            Some("1\n")
        );
        // update: false leaves the clone alone.
        let frozen = json!({"repo": up, "dest": dest, "update": false});
        assert!(plan(&Git, &frozen).is_empty());
    }

    #[test]
    fn a_changed_remote_url_is_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (up, _, _) = upstream(&dir);
        let dest = path_in(&dir, "co");
        converge(&Git, &json!({"repo": up, "dest": dest}));
        let moved = path_in(&dir, "moved.git");
        git(
            &dir.path().to_string_lossy(),
            &["clone", "-q", "--bare", &up, &moved],
        );
        let params = json!({"repo": moved, "dest": dest});
        let (first, _) = converge(&Git, &params);
        assert_eq!(get(&first.result, "remote_url_changed"), true);
        assert_eq!(
            git(&dest, &["config", "--get", "remote.origin.url"]),
            format!("file://{moved}")
        );
    }

    #[test]
    fn refusals_and_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (up, _, _) = upstream(&dir);
        let dest = path_in(&dir, "co");
        for (extra, field) in [
            (json!({"verify_commit": true}), "verify_commit"),
            (json!({"archive": "/tmp/a.zip"}), "archive"),
            (json!({"track_submodules": "yes"}), "track_submodules"),
            (
                json!({"accept_hostkey": true, "accept_newhostkey": true}),
                "accept_newhostkey",
            ),
        ] {
            let mut params = json!({"repo": up, "dest": dest});
            if let (Some(m), Some(e)) = (params.as_object_mut(), extra.as_object()) {
                m.extend(e.clone());
            }
            let err = DynModule::plan(&Git, &params, &mut host()).expect_err(field);
            assert!(
                matches!(err, ModuleError::Params(ref e) if e.field() == Some(field)),
                "{err}"
            );
        }
        let err = DynModule::plan(
            &Git,
            &json!({"repo": up, "dest": dest, "version": "nope"}),
            &mut host(),
        )
        .expect_err("no such version");
        assert_eq!(
            err.to_string(),
            "Could not determine remote revision for nope"
        );
        let err = DynModule::plan(&Git, &json!({"repo": up}), &mut host()).expect_err("no dest");
        assert!(err
            .to_string()
            .starts_with("the destination directory must be specified"));
        let err = DynModule::plan(
            &Git,
            &json!({"repo": path_in(&dir, "none"), "dest": dest}),
            &mut host(),
        )
        .expect_err("no repo");
        assert!(
            err.to_string().starts_with("Failed to read the remote"),
            "{err}"
        );
        // YAML numbers as versions.
        assert!(Git
            .check_params(&json!({"repo": up, "dest": dest, "version": 1.0}))
            .is_ok());
    }

    #[test]
    fn resolves_versions_like_ansible() {
        let listing = "ref: refs/heads/main\tHEAD\naaa1\tHEAD\naaa1\trefs/heads/main\nbbb2\trefs/heads/dev\nccc3\trefs/tags/v1\nddd4\trefs/tags/v1^{}\neee5\trefs/tags/v2\n";
        assert_eq!(
            resolve(listing, "HEAD").ok(),
            Some(Target::Branch {
                name: "main".into(),
                sha: "aaa1".into()
            })
        );
        assert_eq!(
            resolve(listing, "v1").ok(),
            Some(Target::Detached { sha: "ddd4".into() })
        );
        assert_eq!(
            resolve(listing, "v2").ok(),
            Some(Target::Detached { sha: "eee5".into() })
        );
        assert_eq!(
            resolve(listing, "ABCDEF1").ok(),
            Some(Target::Detached {
                sha: "abcdef1".into()
            })
        );
        assert!(resolve(listing, "v3").is_err());
    }
}
