//! `copy`: put content in a file on the host, atomically, with the wanted
//! owner, group and mode.
//!
//! The engine resolves a controller-side `src` before the module sees it: it
//! reads the file and passes its bytes as `content` (text) or `_content_b64`
//! (base64, for binary files), with the controller path in `_src_path` for
//! messages and for the basename when `dest` is a directory. `src` itself
//! only reaches the module with `remote_src: true` (a path on the host).
//!
//! The plan is one probe: stat of the destination (a directory gets the
//! source's basename appended on the host), its content when small (so the
//! comparison and the diff cost no extra trip) or its sha1 when large, and
//! the owner/group lookups. Apply is one `write_file`, plus one trip each for
//! `backup` and `validate` when asked.
//!
//! A directory `src` is copied by [`super::copy_tree`]: a controller one
//! arrives from the engine as `_tree`, a `remote_src` one is found by the
//! same probe (its source stat says directory).
//!
//! Differences from Ansible: `mode: preserve` on a single file only has
//! an effect with `remote_src`;
//! `local_follow`, `attributes` and SELinux options are accepted and
//! ignored. A vault-encrypted `src` is decrypted by the engine
//! (`ControllerInput::File::decrypt`).

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::capability::{ControllerInput, HostSide, Ship};
use crate::params::{de_bool, de_opt_bool, de_opt_mode, de_opt_string, mode_str, yes, Mode};
use crate::probe::{parse_stat, sha1_snippet, stat_snippet, tagged, WantedAttrs};
use crate::shell_quote::{quote, quote_path};
use crate::textfile::{self, Read, DIFF_LIMIT};
use crate::{Host, HostError, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `copy`: what `herd doc` shows, and what the parser takes.
pub struct CopyParams {
    /// Where the file goes on the host. Ending in `/`, or an existing directory: the file keeps
    /// the source's base name inside it.
    pub dest: String,
    /// The file's content, instead of `src`. A string is written as it is; any other value (a
    /// mapping, a list) is written as JSON, as Ansible does.
    pub content: Option<Value>,
    /// Set by the engine: a binary controller file's content, base64.
    #[serde(rename = "_content_b64")]
    pub content_b64: Option<String>,
    /// Set by the engine: the controller path the content was read from.
    #[serde(rename = "_src_path")]
    pub src_path: Option<String>,
    /// Set by the engine: a controller directory's files and subdirectories.
    #[serde(rename = "_tree")]
    pub tree: Option<Vec<super::copy_tree::TreeEntry>>,
    /// The file to copy: a controller path (read by the engine), or with `remote_src` a path on
    /// the host. A directory is copied recursively: ending in `/`, its contents go into `dest`,
    /// else the directory itself.
    pub src: Option<String>,
    /// `src` is a path on the host, not on the controller.
    #[serde(default, deserialize_with = "de_bool")]
    pub remote_src: bool,
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
    /// Permissions of the directories created (for a `dest` that ends in `/`, or for a directory
    /// `src`), and of a controller directory's subdirectories.
    #[serde(default, deserialize_with = "de_opt_mode")]
    pub directory_mode: Option<Mode>,
    /// Keep a timestamped copy of the file (`FILE.PID.YYYY-MM-DD@HH:MM:SS~`) before changing
    /// it; its path is returned as `backup_file`.
    #[serde(default, deserialize_with = "de_bool")]
    pub backup: bool,
    /// Replace a `dest` whose content differs. With `false` an existing file is left alone.
    #[serde(default = "yes", alias = "thirsty", deserialize_with = "de_bool")]
    pub force: bool,
    /// When `dest` is a symlink, change the file it points to instead of replacing the link.
    #[serde(default, deserialize_with = "de_bool")]
    pub follow: bool,
    /// Accepted and ignored (controller symlinks are always followed).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub local_follow: Option<bool>,
    /// A command run on the new content before it replaces the file, with `%s` standing for a
    /// temp file; the task fails if it exits non-zero.
    pub validate: Option<String>,
    /// The SHA-1 the source must have; the task fails if it differs.
    pub checksum: Option<String>,
    /// A vault-encrypted controller `src` is decrypted on the controller before it is copied;
    /// `false` copies it still encrypted.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub decrypt: Option<bool>,
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

/// The `copy` module.
pub struct Copy;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Copy::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// Where the new content comes from.
enum Source {
    Bytes(Vec<u8>),
    /// A path on the host (`remote_src`).
    Remote(String),
}

fn source(p: &CopyParams) -> Result<Source, ModuleError> {
    if p.remote_src {
        return p
            .src
            .clone()
            .map(Source::Remote)
            .ok_or_else(|| invalid("src", "required with remote_src"));
    }
    if let Some(b64) = &p.content_b64 {
        return base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map(Source::Bytes)
            .map_err(|e| invalid("_content_b64", e.to_string()));
    }
    match &p.content {
        Some(Value::String(s)) => Ok(Source::Bytes(s.clone().into_bytes())),
        Some(Value::Null) | None => Err(match &p.src {
            Some(_) => invalid(
                "src",
                "a controller `src` must be read by the engine and passed as content",
            ),
            None => invalid("src", "one of `src` or `content` is required"),
        }),
        Some(Value::Number(n)) => Ok(Source::Bytes(n.to_string().into_bytes())),
        Some(Value::Bool(b)) => Ok(Source::Bytes(
            if *b { "True" } else { "False" }.as_bytes().to_vec(),
        )),
        Some(v) => serde_json::to_vec(v)
            .map(Source::Bytes)
            .map_err(|e| invalid("content", e.to_string())),
    }
}

fn basename(p: &CopyParams) -> Option<String> {
    let from = if p.remote_src {
        p.src.as_deref()
    } else {
        p.src_path.as_deref().or(p.src.as_deref())
    }?;
    from.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|b| !b.is_empty())
        .map(str::to_string)
}

impl Copy {
    fn want(p: &CopyParams, src_mode: Option<u32>) -> WantedAttrs {
        WantedAttrs {
            owner: p.owner.clone(),
            group: p.group.clone(),
            mode: match &p.mode {
                Some(Mode::Preserve) => src_mode.map(Mode::Octal),
                other => other.clone(),
            },
        }
    }
}

impl Module for Copy {
    const NAME: &'static str = "copy";
    // An action plugin in Ansible that refuses `async`.
    const ASYNC: crate::capability::AsyncSupport = crate::capability::AsyncSupport::Refused;
    /// A controller `src` arrives as `content` (or `_content_b64`).
    const CONTROLLER_INPUTS: &'static [ControllerInput] = &[ControllerInput::File {
        param: "src",
        ship: Ship::Text {
            text: "content",
            binary: "_content_b64",
        },
        host_side: &[HostSide::Set("remote_src")],
        checked_before_run: true,
        decrypt: Some("decrypt"),
        tree: Some("_tree"),
    }];
    const DOC_SHORT: &'static str = "Copy a file or a string to the host.";
    const DOC_LONG: &'static str = r##"The file is written only when its content or attributes differ, atomically (a temp file in the same directory, then rename). `--diff` shows the content change. Owner, group and mode are set as `file` sets them."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Site config
  copy:
    src: files/site.conf
    dest: /etc/nginx/conf.d/site.conf
    owner: root
    mode: "0644"

- name: A marker
  copy:
    content: "deployed\n"
    dest: /srv/app/DEPLOYED
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("dest", "The file written."),
        ("checksum", "SHA-1 of the new content."),
        (
            "backup_file",
            "The backup's path, with `backup: true` and an existing file.",
        ),
    ];
    type Params = CopyParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        if let Some(tree) = &p.tree {
            return super::copy_tree::plan_controller(p, tree, host);
        }
        let src = source(p)?;
        let base = basename(p);
        let mut setup = format!("p={}", quote_path(&p.dest));
        if let Some(b) = &base {
            setup.push_str(&format!(
                "; if [ -d \"$p\" ]; then p=\"${{p%/}}\"/{}; fi",
                quote(b)
            ));
        }
        let into_new_dir = p.dest.ends_with('/');
        if into_new_dir && base.is_none() {
            return Err(ModuleError::failed(
                "can not use content with a dir as dest",
            ));
        }
        if into_new_dir {
            // dest `dir/` that does not exist yet: the file goes inside it.
            setup.push_str(&format!(
                "; case \"$p\" in */) p=\"$p\"{} ;; esac",
                quote(base.as_deref().unwrap_or_default())
            ));
        }
        let mut extra = String::new();
        if let Source::Remote(s) = &src {
            let sw = quote(s);
            extra.push_str(&stat_snippet("SS", &sw, true));
            extra.push_str(&sha1_snippet("SSUM", &sw));
        }
        // Modes compare against the source's for `preserve`, known only
        // after the probe; owner/group lookups do not depend on it.
        let lookup = Self::want(p, None);
        let read = match src {
            Source::Bytes(_) => Read::UpTo(DIFF_LIMIT),
            Source::Remote(_) => Read::ChecksumOnly,
        };
        let dest = textfile::probe(host, &setup, p.follow, &lookup, read, &extra)?;

        let (new_sum, new_size, src_mode) = match &src {
            Source::Bytes(b) => (textfile::sha1_hex(b), b.len() as u64, None),
            Source::Remote(s) => {
                let st = parse_stat(&dest.text, "SS")?
                    .ok_or_else(|| ModuleError::failed(format!("Source {s} not found")))?;
                if st.kind == crate::probe::Kind::Dir {
                    return super::copy_tree::plan_remote(p, s, host);
                }
                let sum = tagged(&dest.text, "SSUM").ok_or_else(|| {
                    ModuleError::failed(format!("Source {s} is not a readable regular file"))
                })?;
                (sum.to_string(), st.size, Some(st.mode))
            }
        };
        if let Some(want_sum) = &p.checksum {
            if !want_sum.eq_ignore_ascii_case(&new_sum) {
                return Err(ModuleError::failed(format!(
                    "Copied file does not match the expected checksum. Transfer failed. ({new_sum} != {want_sum})"
                )));
            }
        }
        let want = Self::want(p, src_mode);
        let path = dest.path.clone();
        if dest.is_dir() {
            return Err(ModuleError::failed(format!(
                "can not use content with a dir as dest: {path}"
            )));
        }
        let mkdir = !dest.parent_exists;
        // A missing directory is not created (Ansible's copy does not
        // either), but in check mode an earlier task may only have planned
        // to create it: say what would be written and why it can't be yet,
        // and let `apply` refuse with Ansible's message.
        let missing_dir = mkdir && !into_new_dir;

        let mut plan = Plan::default();
        if missing_dir {
            plan.changes.push(format!(
                "directory {} does not exist yet (an earlier task has to create it)",
                parent(&path)
            ));
        }
        let old_sum = dest.checksum();
        let content_changed = old_sum.as_deref() != Some(new_sum.as_str());
        let mode = textfile::resolve_mode(&want, &dest);
        if dest.exists() && !p.force {
            // force=no never touches an existing file, not even its mode.
        } else if content_changed {
            plan.changes.push(if dest.exists() {
                format!("update content of {path}")
            } else {
                format!("create {path}")
            });
            if let Source::Bytes(b) = &src {
                let before = dest.content.clone().unwrap_or_default();
                match textfile::diff(&path, &before, b) {
                    Some(d) => plan.diffs.push(d),
                    None => plan
                        .changes
                        .push(format!("(binary or large content, {new_size} bytes)")),
                }
            }
        } else if let Some(st) = &dest.stat {
            plan.changes.extend(want.diff(&path, st).0);
        }

        let mut result = textfile::written_result("dest", &dest, &want, mode, new_size);
        result.insert("checksum".into(), json!(new_sum));
        if let Some(s) = p.src_path.as_ref().or(p.src.as_ref()) {
            result.insert("src".into(), json!(s));
        }
        if plan.is_empty() {
            if let Some(st) = &dest.stat {
                let mut r = crate::probe::file_result("dest", &path, Some(st));
                r.insert("checksum".into(), json!(old_sum.unwrap_or(new_sum)));
                r.insert("changed".into(), json!(false));
                plan.result = r;
            }
            return Ok(plan);
        }
        plan.state = json!({
            "dest": path,
            "write_path": dest.write_path,
            "content_changed": content_changed,
            "exists": dest.exists(),
            "is_link": dest.stat.as_ref().is_some_and(|s| s.kind == crate::probe::Kind::Link),
            "mkdir": mkdir && into_new_dir,
            "missing_dir": missing_dir,
            "mode": mode,
            "result": result,
        });
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        match (
            plan.state.get("tree").and_then(Value::as_str),
            &p.tree,
            &p.src,
        ) {
            (Some("controller"), Some(tree), _) => {
                return super::copy_tree::apply_controller(p, tree, &plan, host)
            }
            (Some("remote"), _, Some(src)) => {
                return super::copy_tree::apply_remote(p, src, &plan, host)
            }
            _ => {}
        }
        let st = &plan.state;
        let (Some(path), Some(write_path), Some(Value::Object(result))) = (
            st.get("dest").and_then(Value::as_str),
            st.get("write_path").and_then(Value::as_str),
            st.get("result"),
        ) else {
            return Err(ModuleError::failed("copy: apply called without a plan"));
        };
        let flag = |k: &str| st.get(k).and_then(Value::as_bool).unwrap_or(false);
        if flag("missing_dir") {
            return Err(ModuleError::failed(format!(
                "Destination directory {} does not exist",
                parent(path)
            )));
        }
        let mode = st.get("mode").and_then(Value::as_u64).map(|m| m as u32);
        let mut result = result.clone();
        let src = source(p)?;
        let want = WantedAttrs {
            owner: p.owner.clone(),
            group: p.group.clone(),
            mode: mode.map(Mode::Octal),
        };

        if flag("mkdir") {
            let d = quote(&parent(path));
            let mut script = format!("mkdir -p -- {d}");
            if let Some(m) = p
                .directory_mode
                .as_ref()
                .and_then(|m| m.resolve(None, true))
            {
                script.push_str(&format!(" && chmod {} -- {d}", mode_str(m)));
            }
            run_ok(host, "create directory", &script)?;
        }
        if !flag("content_changed") {
            // An unfollowed symlink dest gets its own owner changed, never
            // its target's (that is what plan compared).
            let is_link = flag("is_link");
            let mode = mode.filter(|_| !is_link);
            let script = want.apply_script(&quote(write_path), mode, is_link);
            run_ok(host, "set attributes", &script)?;
        } else {
            if p.backup && flag("exists") {
                let b = textfile::backup(host, write_path)?;
                result.insert("backup_file".into(), json!(b));
            }
            if let Some(v) = &p.validate {
                let fill = match &src {
                    Source::Bytes(b) => textfile::Fill::Bytes(b),
                    Source::Remote(s) => textfile::Fill::HostFile(s),
                };
                // The wanted owner, group and mode go on the checked file
                // first: some checks look at them (as Ansible's copy does).
                let prepare = want.apply_script("\"$t\"", mode, false);
                textfile::validate(
                    host,
                    Self::NAME,
                    textfile::ValidateStyle::Copy,
                    v,
                    write_path,
                    fill,
                    &prepare,
                )
                .map_err(|e| with_checksum(e, &result))?;
            }
            match &src {
                Source::Bytes(b) => {
                    host.write_file(write_path, b, &textfile::file_attrs(&want, mode))?;
                }
                Source::Remote(s) => copy_on_host(host, s, write_path, &want, mode)?,
            }
        }
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}

/// Ansible's copy failures carry the new content's `checksum`.
fn with_checksum(e: ModuleError, planned: &serde_json::Map<String, Value>) -> ModuleError {
    match (e, planned.get("checksum")) {
        (ModuleError::Failed { msg, mut result }, Some(sum)) => {
            result.insert("checksum".into(), sum.clone());
            ModuleError::Failed { msg, result }
        }
        (e, _) => e,
    }
}

fn parent(path: &str) -> String {
    match path.trim_end_matches('/').rfind('/') {
        Some(0) => "/".into(),
        Some(i) => path[..i].to_string(),
        None => ".".into(),
    }
}

fn run_ok(host: &mut dyn Host, action: &'static str, script: &str) -> Result<(), ModuleError> {
    if script.is_empty() {
        return Ok(());
    }
    let out = host.run(&format!("set -e\n{script}"), None)?;
    if out.success() {
        Ok(())
    } else {
        Err(ModuleError::Host(HostError::Command {
            action,
            rc: out.rc,
            stderr: out.stderr_str(),
        }))
    }
}

/// `remote_src`: copy on the host into a temp file next to the destination,
/// set its attributes, then rename it into place (`validate` ran before).
fn copy_on_host(
    host: &mut dyn Host,
    src: &str,
    dest: &str,
    want: &WantedAttrs,
    mode: Option<u32>,
) -> Result<(), ModuleError> {
    let dw = quote(dest);
    let mut script = format!(
        "t=$(mktemp \"$(dirname -- {dw})/.herd.XXXXXX\")\ntrap 'rm -f \"$t\"' EXIT; trap 'exit 143' HUP INT TERM\ncp -- {} \"$t\"\n\
         if [ -e {dw} ]; then chown --reference={dw} \"$t\" 2>/dev/null || true; fi\n",
        quote(src)
    );
    script.push_str(&want.apply_script("\"$t\"", mode, false));
    // After chown, which clears setuid/setgid bits.
    if mode.is_none() {
        script.push_str(&format!(
            "if [ -e {dw} ]; then chmod --reference={dw} \"$t\"; else chmod 0644 \"$t\"; fi\n"
        ));
    }
    script.push_str(&format!("mv -f -- \"$t\" {dw}\ntrap - EXIT\n"));
    run_ok(host, "copy on the host", &script)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{apply, converge, get, host, path_in, plan};
    use crate::DynModule;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn read(p: &str) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    fn mode_of(p: &str) -> u32 {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0)
    }

    #[test]
    fn content_create_update_and_diff() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "app.conf");
        let params = json!({"dest": f, "content": "a=1\n", "mode": "0640"});
        let first = plan(&Copy, &params);
        assert!(!std::path::Path::new(&f).exists(), "plan wrote the file");
        assert_eq!(first.changes, [format!("create {f}")]);
        let (_, out) = converge(&Copy, &params);
        assert_eq!(read(&f), "a=1\n");
        assert_eq!(mode_of(&f), 0o640);
        assert_eq!(get(&out.result, "dest"), &json!(f));
        assert_eq!(get(&out.result, "mode"), "0640");
        assert_eq!(get(&out.result, "size"), 4);
        assert_eq!(
            get(&out.result, "checksum"),
            &json!(textfile::sha1_hex(b"a=1\n"))
        );

        let params = json!({"dest": f, "content": "a=2\n"});
        let (first, _) = converge(&Copy, &params);
        assert_eq!(first.diffs.len(), 1);
        assert_eq!(first.diffs[0].before, "a=1\n");
        assert_eq!(first.diffs[0].after, "a=2\n");
        // The mode of a replaced file is kept.
        assert_eq!(mode_of(&f), 0o640);
        let ok = plan(&Copy, &params);
        assert_eq!(
            get(&ok.result, "checksum"),
            &json!(textfile::sha1_hex(b"a=2\n"))
        );
    }

    #[test]
    fn metadata_only_changes_do_not_rewrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        std::fs::write(&f, "same\n").expect("write");
        let ino = std::fs::metadata(&f).map(|m| m.ino()).unwrap_or(0);
        let params = json!({"dest": f, "content": "same\n", "mode": "u=rw,go=", "owner": "nobody", "group": "daemon"});
        let (first, out) = converge(&Copy, &params);
        assert_eq!(first.changes.len(), 3, "{:?}", first.changes);
        assert!(first.diffs.is_empty());
        assert_eq!(std::fs::metadata(&f).map(|m| m.ino()).unwrap_or(0), ino);
        assert_eq!(mode_of(&f), 0o600);
        assert_eq!(get(&out.result, "owner"), "nobody");
        assert_eq!(get(&out.result, "uid"), 65534);
        assert_eq!(get(&out.result, "gid"), 1);
    }

    #[test]
    fn backup_and_force_no() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        std::fs::write(&f, "old\n").expect("write");
        let keep = json!({"dest": f, "content": "new\n", "force": "no"});
        assert!(plan(&Copy, &keep).is_empty());
        let params = json!({"dest": f, "content": "new\n", "backup": true});
        let (_, out) = converge(&Copy, &params);
        let b = get(&out.result, "backup_file")
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(b.starts_with(&format!("{f}.")) && b.ends_with('~'), "{b}");
        assert_eq!(read(&b), "old\n");
        assert_eq!(read(&f), "new\n");
        // force=no still creates a missing file.
        let g = path_in(&dir, "g");
        converge(&Copy, &json!({"dest": g, "content": "x", "force": false}));
        assert_eq!(read(&g), "x");
    }

    #[test]
    fn directory_dest_and_binary_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_string_lossy().to_string();
        let params = json!({"dest": d, "_content_b64": "AAEC/w==", "_src_path": "files/blob.bin"});
        let (first, out) = converge(&Copy, &params);
        let f = path_in(&dir, "blob.bin");
        assert_eq!(get(&out.result, "dest"), &json!(f));
        assert!(first.diffs.is_empty());
        assert_eq!(std::fs::read(&f).ok(), Some(vec![0, 1, 2, 255]));
        // A missing directory named with a trailing slash is created.
        let params = json!({"dest": format!("{d}/new/"), "content": "x", "_src_path": "a.txt", "directory_mode": "0700"});
        converge(&Copy, &params);
        assert_eq!(read(&path_in(&dir, "new/a.txt")), "x");
        assert_eq!(mode_of(&path_in(&dir, "new")), 0o700);
        // Content into a directory fails.
        let err = DynModule::plan(&Copy, &json!({"dest": d, "content": "x"}), &mut host());
        assert!(err.is_err());
        // Into a missing directory: the plan (check mode) says so, and
        // applying refuses with Ansible's message, creating nothing.
        let params = json!({"dest": path_in(&dir, "no/f"), "content": "x"});
        let plan = DynModule::plan(&Copy, &params, &mut host()).expect("plan");
        assert!(
            plan.changes
                .iter()
                .any(|c| c.contains("does not exist yet")),
            "{:?}",
            plan.changes
        );
        let err = DynModule::apply(&Copy, &params, plan, &mut host()).expect_err("no parent");
        assert!(err.to_string().contains("Destination directory"), "{err}");
        assert!(!std::path::Path::new(&path_in(&dir, "no")).exists());
    }

    #[test]
    fn remote_src_and_validate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = path_in(&dir, "src");
        std::fs::write(&s, "remote\n").expect("write");
        std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o751)).expect("chmod");
        let f = path_in(&dir, "dst");
        let params = json!({"src": s, "dest": f, "remote_src": true, "mode": "preserve"});
        converge(&Copy, &params);
        assert_eq!(read(&f), "remote\n");
        assert_eq!(mode_of(&f), 0o751);

        let bad = json!({"dest": f, "content": "nope\n", "validate": "grep -q remote %s"});
        let pl = plan(&Copy, &bad);
        let err = DynModule::apply(&Copy, &bad, pl, &mut host()).expect_err("invalid");
        assert!(err.to_string().contains("failed to validate"));
        assert_eq!(read(&f), "remote\n");
        // remote_src content is checked too, with the same failure shape.
        let o = path_in(&dir, "other");
        std::fs::write(&o, "nope\n").expect("write");
        let bad = json!({"src": o, "dest": f, "remote_src": true, "validate": "grep -q remote %s"});
        let pl = plan(&Copy, &bad);
        match DynModule::apply(&Copy, &bad, pl, &mut host()) {
            Err(ModuleError::Failed { msg, result }) => {
                assert_eq!(msg, "failed to validate");
                assert_eq!(result.get("exit_status"), Some(&json!(1)));
            }
            other => panic!("expected a validate failure, got {other:?}"),
        }
        assert_eq!(read(&f), "remote\n");
        let good = json!({"dest": f, "content": "remote 2\n", "validate": "grep -q remote %s"});
        let pl = plan(&Copy, &good);
        apply(&Copy, &good, pl);
        assert_eq!(read(&f), "remote 2\n");
    }

    /// The failure as Ansible's copy reports it, and nothing left behind.
    #[test]
    fn validate_failure_leaves_dest_untouched() {
        let dir = tempfile::Builder::new()
            .prefix("with space ")
            .tempdir()
            .expect("tempdir");
        let f = path_in(&dir, "sudoers");
        std::fs::write(&f, "ok old\n").expect("write");
        let bad = json!({"dest": f, "content": "wrong\n",
            "validate": "sh -c 'grep -q ok \"$1\" || { echo bad syntax >&2; exit 3; }' check %s"});
        let pl = plan(&Copy, &bad);
        match DynModule::apply(&Copy, &bad, pl, &mut host()) {
            Err(ModuleError::Failed { msg, result }) => {
                assert_eq!(msg, "failed to validate");
                assert_eq!(result.get("exit_status"), Some(&json!(3)));
                assert_eq!(result.get("stderr"), Some(&json!("bad syntax\n")));
                assert_eq!(result.get("stdout"), Some(&json!("")));
                let sum = textfile::sha1_hex(b"wrong\n");
                assert_eq!(result.get("checksum"), Some(&json!(sum)));
            }
            other => panic!("expected a validate failure, got {other:?}"),
        }
        assert_eq!(read(&f), "ok old\n");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(left.len(), 1, "temp files left: {left:?}");

        // Good content passes, then nothing is left to do.
        let good = json!({"dest": f, "content": "ok new\n", "validate": "grep -q ok %s"});
        converge(&Copy, &good);
        assert_eq!(read(&f), "ok new\n");
    }

    #[test]
    fn validate_sees_wanted_mode_and_needs_percent_s() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        // The checked file already has the wanted mode, as in Ansible.
        let p = json!({"dest": f, "content": "x\n", "mode": "0440",
            "validate": "sh -c 'test \"$(stat -c %a \"$1\")\" = 440' check %s"});
        converge(&Copy, &p);
        assert_eq!(mode_of(&f), 0o440);

        let p = json!({"dest": f, "content": "y\n", "validate": "grep -q y"});
        let pl = plan(&Copy, &p);
        let err = DynModule::apply(&Copy, &p, pl, &mut host()).expect_err("no %s");
        assert_eq!(err.to_string(), "validate must contain %s: grep -q y");
        assert_eq!(read(&f), "x\n");
    }

    /// Check mode is the plan alone: validate does not run (Ansible skips
    /// it in check mode too).
    #[test]
    fn check_mode_does_not_validate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        let mark = path_in(&dir, "ran");
        let p = json!({"dest": f, "content": "x\n",
            "validate": format!("sh -c 'touch {mark}; exit 1' check %s")});
        let pl = plan(&Copy, &p);
        assert_eq!(pl.changes, [format!("create {f}")]);
        assert!(!std::path::Path::new(&mark).exists());
        assert!(!std::path::Path::new(&f).exists());
    }

    #[test]
    fn symlink_dest_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = path_in(&dir, "target");
        std::fs::write(&t, "same").expect("write");
        let l = path_in(&dir, "link");
        std::os::unix::fs::symlink(&t, &l).expect("symlink");
        // Same content: only the link's own owner may change; mode cannot.
        let p = json!({"dest": l, "content": "same", "mode": "0600", "owner": "nobody"});
        converge(&Copy, &p);
        assert_eq!(mode_of(&t), 0o644);
        let uid = |p: &str| std::fs::symlink_metadata(p).map(|m| m.uid()).unwrap_or(0);
        assert_eq!((uid(&l), uid(&t)), (65534, 0));
        // New content replaces the link with a file (follow defaults to no).
        converge(&Copy, &json!({"dest": l, "content": "new"}));
        assert!(std::fs::symlink_metadata(&l).is_ok_and(|m| m.file_type().is_file()));
        assert_eq!(read(&t), "same");
        // With follow, the target is written and the link stays.
        std::fs::remove_file(&l).expect("rm");
        std::os::unix::fs::symlink(&t, &l).expect("symlink");
        converge(
            &Copy,
            &json!({"dest": l, "content": "via link", "follow": true}),
        );
        assert_eq!(read(&t), "via link");
        assert!(std::fs::symlink_metadata(&l).is_ok_and(|m| m.file_type().is_symlink()));
    }

    #[test]
    fn non_string_content_is_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "j");
        converge(&Copy, &json!({"dest": f, "content": {"a": [1, 2]}}));
        assert_eq!(read(&f), r#"{"a":[1,2]}"#);
        assert!(Copy.check_params(&json!({"dest": f, "path": "x"})).is_err());
    }
}
