//! `fetch`: copy a file from the host to the controller, into
//! `<dest>/<inventory_hostname>/<src>` (or to `dest` itself with `flat`).
//!
//! The plan probes the host once (the path with `~` expanded, whether it
//! is a directory, missing or unreadable, and its SHA-1 and MD5) and
//! compares the SHA-1 with the controller's copy: equal means nothing to
//! do. Apply streams the file in pieces ([`Host::fetch_file`]) into a temp
//! file beside the copy, checks its SHA-1 against the host's, and renames
//! it into place. `dest` is a controller directory the engine makes
//! absolute from the playbook's directory
//! ([`ControllerInput::Directory`]), as Ansible's `path_dwim` does.
//!
//! Check mode skips every fetch, as Ansible does (herd's message is the
//! generic "does not support check mode"). Differences from Ansible: a copy
//! whose checksum does not match is not left in place.

use std::io::Write as _;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::capability::ControllerInput;
use crate::params::{de_bool, yes};
use crate::probe::tagged;
use crate::shell_quote::quote_path;
use crate::textfile::sha1_hex;
use crate::{Host, Module, ModuleError, Outcome, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `fetch`: what `herd doc` shows, and what the parser takes.
pub struct FetchParams {
    /// The file on the host; a directory is refused.
    pub src: String,
    /// The controller directory the copy goes under (relative to the playbook's directory), or
    /// with `flat` the copy's own path (a trailing `/` puts it in that directory under its
    /// base name).
    pub dest: String,
    /// Copy to `dest` itself instead of `<dest>/<inventory_hostname>/<src>`.
    #[serde(default, deserialize_with = "de_bool")]
    pub flat: bool,
    /// A missing (or directory) `src` fails the task; otherwise it is reported and ignored.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub fail_on_missing: bool,
    /// Check the copy's SHA-1 against the host's file.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub validate_checksum: bool,
}

/// The `fetch` module.
pub struct Fetch;

/// What the plan found and apply needs.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Transfer {
    source: String,
    dest: String,
    remote_sha1: String,
    remote_md5: String,
}

/// Python's `posixpath.normpath`, for the copy's path.
fn normpath(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if abs => {}
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// What the probe says about `src`.
enum Remote {
    Dir,
    Missing,
    Unreadable,
    File { sha1: String, md5: String },
}

fn probe(p: &FetchParams, host: &mut dyn Host) -> Result<(String, Remote), ModuleError> {
    let script = format!(
        "p={}\nprintf 'P %s\\n' \"$p\"\n\
         if [ -d \"$p\" ]; then echo DIR\n\
         elif [ ! -e \"$p\" ]; then echo MISSING\n\
         elif [ ! -r \"$p\" ]; then echo NOREAD\n\
         else s=$(sha1sum < \"$p\") && m=$(md5sum < \"$p\") && echo \"SUM ${{s%% *}} ${{m%% *}}\"; fi\n",
        quote_path(&p.src)
    );
    let out = host.run(&script, None)?;
    let text = out.stdout_str();
    let source = tagged(&text, "P").unwrap_or(&p.src).to_string();
    let remote = if text.lines().any(|l| l == "DIR") {
        Remote::Dir
    } else if text.lines().any(|l| l == "MISSING") {
        Remote::Missing
    } else if text.lines().any(|l| l == "NOREAD") {
        Remote::Unreadable
    } else if let Some((sha1, md5)) = tagged(&text, "SUM").and_then(|s| s.split_once(' ')) {
        Remote::File {
            sha1: sha1.to_string(),
            md5: md5.to_string(),
        }
    } else {
        return Err(ModuleError::failed(format!(
            "cannot read {} on the host (rc={}): {}",
            p.src,
            out.rc,
            out.stderr_str().trim_end()
        )));
    };
    Ok((source, remote))
}

/// Where the copy goes, by Ansible's rules.
fn local_dest(p: &FetchParams, host: &str, source: &str) -> Result<String, ModuleError> {
    if !p.flat {
        return Ok(normpath(&format!("{}/{host}/{source}", p.dest)));
    }
    let mut dest = p.dest.clone();
    let is_dir = |d: &str| std::path::Path::new(d).is_dir();
    if is_dir(&dest) && !dest.ends_with('/') {
        return Err(ModuleError::failed(
            "dest is an existing directory, use a trailing slash if you want to fetch src into that directory",
        ));
    }
    if dest.ends_with('/') {
        let base = source.rsplit('/').next().unwrap_or(source);
        dest = format!("{dest}{base}");
        if is_dir(&dest) {
            return Err(ModuleError::failed(format!(
                "calculated dest '{dest}' is an existing directory, use another path that does not point to an existing directory"
            )));
        }
    }
    Ok(normpath(&dest))
}

fn local_sha1(path: &str) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    std::fs::read(path).ok().map(|b| sha1_hex(&b))
}

/// Stream `source` from the host into the controller file `tmp`.
fn copy_to(host: &mut dyn Host, source: &str, tmp: &str) -> Result<Option<u64>, ModuleError> {
    let local_err =
        |e: std::io::Error| ModuleError::failed(format!("Failed to fetch the file: {tmp}: {e}"));
    let mut f = std::fs::File::create(tmp).map_err(local_err)?;
    let n = host
        .fetch_file(source, &mut f)
        .map_err(|e| ModuleError::failed(format!("Failed to fetch the file: {e}")))?;
    f.flush().map_err(local_err)?;
    Ok(n)
}

/// The result of a task that could not fetch: a failure, or with
/// `fail_on_missing: false` an ok result that says why.
fn not_fetched(
    p: &FetchParams,
    source: &str,
    msg: Option<String>,
    ignored: Option<String>,
) -> Result<Plan, ModuleError> {
    if p.fail_on_missing {
        return Err(ModuleError::failed(msg.unwrap_or_default()));
    }
    let mut plan = Plan::default();
    plan.result.insert("changed".into(), json!(false));
    plan.result.insert("file".into(), json!(source));
    if let Some(m) = ignored {
        plan.result.insert("msg".into(), json!(m));
    }
    Ok(plan)
}

impl Module for Fetch {
    const NAME: &'static str = "fetch";
    // Ansible's fetch skips itself in check mode.
    const CHECK_MODE: bool = false;
    const CONTROLLER_INPUTS: &'static [ControllerInput] =
        &[ControllerInput::Directory { param: "dest" }];
    const DOC_SHORT: &'static str = "Copy a file from the host to the controller.";
    const DOC_LONG: &'static str = r##"The copy goes to `<dest>/<inventory_hostname>/<src>`, so the same file from many hosts does not collide; `flat: true` writes to `dest` itself. The file is copied only when its SHA-1 differs from the controller's copy, in pieces (any size), and renamed into place once its checksum matches the host's."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Collect every host's sshd config
  fetch:
    src: /etc/ssh/sshd_config
    dest: collected/
- name: One file, to a fixed name
  fetch:
    src: /etc/app/ca.pem
    dest: files/ca.pem
    flat: true
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("dest", "the copy's path on the controller"),
        ("checksum", "SHA-1 of the copy"),
        (
            "remote_checksum",
            "SHA-1 of the file on the host (when copied)",
        ),
        ("md5sum", "MD5 of the copy"),
        ("remote_md5sum", "always null, as in Ansible"),
        ("file", "the source path, when nothing was copied"),
    ];
    type Params = FetchParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let (source, remote) = probe(p, host)?;
        let (sha1, md5) = match remote {
            Remote::Dir => {
                let msg = "remote file is a directory, fetch cannot work on directories";
                return not_fetched(
                    p,
                    &source,
                    Some(msg.into()),
                    Some(format!("{msg}, not transferring, ignored")),
                );
            }
            Remote::Missing => {
                let msg = "the remote file does not exist, not transferring, ignored";
                return not_fetched(p, &source, Some(msg.into()), Some(msg.into()));
            }
            Remote::Unreadable => {
                return not_fetched(
                    p,
                    &source,
                    Some(format!("file is not readable: {source}")),
                    None,
                );
            }
            Remote::File { sha1, md5 } => (sha1, md5),
        };
        let dest = local_dest(p, host.name(), &source)?;
        let mut plan = Plan::default();
        if local_sha1(&dest).as_deref() == Some(sha1.as_str()) {
            let r = &mut plan.result;
            r.insert("changed".into(), json!(false));
            r.insert("md5sum".into(), json!(md5));
            r.insert("file".into(), json!(source));
            r.insert("dest".into(), json!(dest));
            r.insert("checksum".into(), json!(sha1));
            return Ok(plan);
        }
        plan.changes
            .push(format!("fetch {source} to {dest} on the controller"));
        plan.keep_state(&Transfer {
            source,
            dest,
            remote_sha1: sha1,
            remote_md5: md5,
        })?;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let t: Transfer = plan.state_as()?;
        let local = std::path::Path::new(&t.dest);
        let local_err = |e: std::io::Error| {
            ModuleError::failed(format!("Failed to fetch the file: {}: {e}", t.dest))
        };
        if let Some(dir) = local.parent() {
            std::fs::create_dir_all(dir).map_err(local_err)?;
        }
        let tmp = format!("{}.herd-fetch.{}", t.dest, std::process::id());
        let fetched = copy_to(host, &t.source, &tmp);
        let sha1 = std::fs::read(&tmp).map(|b| sha1_hex(&b));
        let done = match (fetched, sha1) {
            (Ok(Some(_)), Ok(sha1)) => Ok(sha1),
            (Ok(None), _) => Err(ModuleError::failed(
                "the remote file does not exist, not transferring, ignored",
            )),
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(local_err(e)),
        };
        let sha1 = match done {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let mut r = Map::new();
        if p.validate_checksum && sha1 != t.remote_sha1 {
            let _ = std::fs::remove_file(&tmp);
            r.insert("file".into(), json!(t.source));
            r.insert("dest".into(), json!(t.dest));
            r.insert("checksum".into(), json!(sha1));
            r.insert("remote_checksum".into(), json!(t.remote_sha1));
            r.insert("remote_md5sum".into(), Value::Null);
            return Err(ModuleError::Failed {
                msg: "checksum mismatch".into(),
                result: r,
            });
        }
        std::fs::rename(&tmp, local).map_err(local_err)?;
        r.insert("changed".into(), json!(true));
        r.insert("md5sum".into(), json!(t.remote_md5));
        r.insert("dest".into(), json!(t.dest));
        r.insert("remote_md5sum".into(), Value::Null);
        r.insert("checksum".into(), json!(sha1));
        r.insert("remote_checksum".into(), json!(t.remote_sha1));
        Ok(Outcome::changed(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{converge, get, host, path_in, plan, FakeHost, Match};
    use crate::DynModule;

    #[test]
    fn fetches_under_the_host_name_then_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = path_in(&dir, "remote/app.conf");
        std::fs::create_dir_all(path_in(&dir, "remote")).expect("mkdir");
        std::fs::write(&src, "a=1\n").expect("write");
        let out_dir = path_in(&dir, "out");
        let params = json!({"src": src, "dest": out_dir});
        // The plan alone (check mode) names the copy and writes nothing.
        let pl = plan(&Fetch, &params);
        assert_eq!(pl.changes.len(), 1);
        assert!(!std::path::Path::new(&out_dir).exists());
        let (_, out) = converge(&Fetch, &params);
        let want = normpath(&format!("{out_dir}/local/{src}"));
        assert_eq!(get(&out.result, "dest"), want.as_str());
        assert_eq!(
            std::fs::read_to_string(&want).ok().as_deref(),
            Some("a=1\n")
        );
        assert_eq!(get(&out.result, "checksum"), sha1_hex(b"a=1\n").as_str());
        assert_eq!(
            get(&out.result, "remote_checksum"),
            sha1_hex(b"a=1\n").as_str()
        );
        assert_eq!(
            get(&out.result, "md5sum"),
            "d5e29449b9e66d5b4bb0d6ce48fbbcb1"
        );
        let again = plan(&Fetch, &params);
        assert!(again.is_empty());
        assert_eq!(get(&again.result, "changed"), false);
        assert_eq!(get(&again.result, "file"), src.as_str());
        // A changed source is copied again.
        std::fs::write(&src, "a=2\n").expect("write");
        converge(&Fetch, &params);
        assert_eq!(
            std::fs::read_to_string(&want).ok().as_deref(),
            Some("a=2\n")
        );
    }

    #[test]
    fn flat_dest_and_its_refusals() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = path_in(&dir, "ca.pem");
        std::fs::write(&src, "pem").expect("write");
        let flat = path_in(&dir, "files/ca-copy.pem");
        converge(&Fetch, &json!({"src": src, "dest": flat, "flat": true}));
        assert_eq!(std::fs::read_to_string(&flat).ok().as_deref(), Some("pem"));
        let into = format!("{}/", path_in(&dir, "files"));
        converge(&Fetch, &json!({"src": src, "dest": into, "flat": "yes"}));
        assert!(std::path::Path::new(&path_in(&dir, "files/ca.pem")).is_file());
        let no_slash = path_in(&dir, "files");
        let err = DynModule::plan(
            &Fetch,
            &json!({"src": src, "dest": no_slash, "flat": true}),
            &mut host(),
        )
        .expect_err("a directory without a slash");
        assert!(err.to_string().starts_with("dest is an existing directory"));
    }

    #[test]
    fn missing_and_directory_sources() {
        let dir = tempfile::tempdir().expect("tempdir");
        let none = path_in(&dir, "none");
        let out = path_in(&dir, "out");
        let err = DynModule::plan(&Fetch, &json!({"src": none, "dest": out}), &mut host())
            .expect_err("missing");
        assert_eq!(
            err.to_string(),
            "the remote file does not exist, not transferring, ignored"
        );
        let pl = plan(
            &Fetch,
            &json!({"src": none, "dest": out, "fail_on_missing": false}),
        );
        assert!(pl.is_empty());
        assert_eq!(get(&pl.result, "file"), none.as_str());
        let d = dir.path().to_string_lossy().into_owned();
        let err =
            DynModule::plan(&Fetch, &json!({"src": d, "dest": out}), &mut host()).expect_err("dir");
        assert_eq!(
            err.to_string(),
            "remote file is a directory, fetch cannot work on directories"
        );
        let pl = plan(
            &Fetch,
            &json!({"src": d, "dest": out, "fail_on_missing": false}),
        );
        assert_eq!(
            get(&pl.result, "msg"),
            "remote file is a directory, fetch cannot work on directories, not transferring, ignored"
        );
    }

    /// A copy whose checksum differs from the host's fails and leaves
    /// nothing behind (the fake host's file changed since the probe).
    #[test]
    fn a_checksum_mismatch_fails_and_leaves_no_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = path_in(&dir, "out");
        let mut h = FakeHost::new().named("web-1").answer(
            Match::contains("sha1sum"),
            0,
            format!("P /etc/x\nSUM {} abc\n", sha1_hex(b"old")),
            "",
        );
        h.files.insert("/etc/x".into(), "new".into());
        let params = json!({"src": "/etc/x", "dest": out});
        let pl = DynModule::plan(&Fetch, &params, &mut h).expect("plan");
        assert_eq!(h.scripts.len(), 1, "one probe");
        let err = DynModule::apply(&Fetch, &params, pl, &mut h).expect_err("mismatch");
        assert_eq!(err.to_string(), "checksum mismatch");
        let copy = format!("{out}/web-1/etc/x");
        assert!(!std::path::Path::new(&copy).exists());
        assert_eq!(
            std::fs::read_dir(format!("{out}/web-1/etc"))
                .map(Iterator::count)
                .ok(),
            Some(0)
        );
        // Without the check the copy is kept.
        let params = json!({"src": "/etc/x", "dest": out, "validate_checksum": false});
        let pl = DynModule::plan(&Fetch, &params, &mut h).expect("plan");
        DynModule::apply(&Fetch, &params, pl, &mut h).expect("apply");
        assert_eq!(std::fs::read_to_string(&copy).ok().as_deref(), Some("new"));
    }
}
