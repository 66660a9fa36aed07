//! What `copy`, `lineinfile` and `blockinfile` share: probing a destination
//! file (stat, content, owner lookups) in one script, backups, `validate`,
//! diffs and the registered file result.

use serde_json::{json, Map, Value};

use crate::host::FileAttrs;
use crate::params::{mode_str, Mode};
use crate::probe::{
    check_principals, parse_stat, principal_ids, principals_snippet, stat_snippet, tagged,
    FileStat, Kind, WantedAttrs,
};
use crate::shell_quote::{quote, split};
use crate::{FileDiff, Host, ModuleError};

/// Ansible's `max_file_size_for_diff`: larger files get no diff text, and
/// copy compares them by checksum on the host instead of reading them.
pub const DIFF_LIMIT: u64 = 104_448;

/// Marks where the raw content starts in a probe's output.
const CONTENT_MARK: &str = "--herd-content--";

/// How much of the destination the probe sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The whole content (line editing needs it).
    All,
    /// The content when at most this many bytes, else only its sha1.
    UpTo(u64),
    /// Only its sha1.
    ChecksumOnly,
}

/// A destination file as the probe found it.
#[derive(Debug, Clone)]
pub struct Dest {
    /// The path as resolved on the host (a directory dest gets the source's
    /// basename appended).
    pub path: String,
    /// Where to write: `path`, or the symlink's target when following.
    pub write_path: String,
    /// The file's attributes; `None` when it does not exist.
    pub stat: Option<FileStat>,
    /// Its content, when it was read.
    pub content: Option<Vec<u8>>,
    /// SHA-1 of the content, hex.
    pub sha1: Option<String>,
    /// Whether the file's directory exists.
    pub parent_exists: bool,
    /// uid, gid, user and group of whoever the module runs as.
    pub me: (u32, u32, String, String),
    /// The wanted owner's uid, looked up in the same probe.
    pub owner_id: Option<u32>,
    /// The wanted group's gid, looked up in the same probe.
    pub group_id: Option<u32>,
    /// The probe's tagged lines, for a caller's `extra` snippet.
    pub text: String,
}

impl Dest {
    /// Whether the file exists.
    pub fn exists(&self) -> bool {
        self.stat.is_some()
    }

    /// Whether the path is a directory.
    pub fn is_dir(&self) -> bool {
        self.stat.as_ref().is_some_and(|s| s.kind == Kind::Dir)
    }

    /// The checksum of the current content, from the bytes or the host.
    pub fn checksum(&self) -> Option<String> {
        match &self.content {
            Some(c) => Some(sha1_hex(c)),
            None => self.sha1.clone(),
        }
    }
}

/// SHA-1 of `data`, lowercase hex (what Ansible's `checksum` is).
pub fn sha1_hex(data: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    hex::encode(Sha1::digest(data))
}

/// Probe a destination in one round trip. `setup` is a script that sets the
/// shell variable `p` to the path; `extra` runs after it (its tagged lines
/// come back in `Dest::text`).
pub fn probe(
    host: &mut dyn Host,
    setup: &str,
    follow: bool,
    want: &WantedAttrs,
    read: Read,
    extra: &str,
) -> Result<Dest, ModuleError> {
    let pw = "\"$p\"";
    let mut s = format!("{setup}\nprintf 'EFF %s\\n' \"$p\"\n");
    if follow {
        s.push_str(&format!(
            "if [ -L {pw} ]; then printf 'RP %s\\n' \"$(readlink -f -- {pw})\"; fi\n"
        ));
    }
    s.push_str(&stat_snippet("D", pw, follow));
    // Every process the probe starts costs the host about a millisecond,
    // so: the parent directory by parameter expansion, not dirname; and
    // who we are (only needed to describe a file about to be created) from
    // one `id`, and only when there is no file yet.
    s.push_str(&format!(
        "case $p in */*) herd_pd=${{p%/*}}; herd_pd=${{herd_pd:-/}};; *) herd_pd=.;; esac\n\
         [ -d \"$herd_pd\" ] && echo PD yes\n\
         [ -e {pw} ] || echo ME \"$(LC_ALL=C id)\"\n"
    ));
    s.push_str(&principals_snippet(want));
    s.push_str(extra);
    let sum = format!("c=$(sha1sum < {pw}) && echo SUM \"${{c%% *}}\"");
    let cat = format!("echo {CONTENT_MARK}; cat -- {pw}");
    s.push_str(&format!("if [ -f {pw} ] && [ -r {pw} ]; then "));
    match read {
        Read::All => s.push_str(&cat),
        Read::ChecksumOnly => s.push_str(&sum),
        Read::UpTo(n) => s.push_str(&format!(
            "if [ \"$(stat -L -c %s -- {pw})\" -le {n} ]; then {cat}; else {sum}; fi"
        )),
    }
    s.push_str("; fi\n");

    let out = host.run(&s, None)?;
    if !out.success() {
        return Err(ModuleError::failed(format!(
            "probing the destination failed (rc={}): {}",
            out.rc,
            out.stderr_str().trim_end()
        )));
    }
    let mark = format!("{CONTENT_MARK}\n");
    let (head, content) = match find(&out.stdout, mark.as_bytes()) {
        Some(i) => (
            &out.stdout[..i],
            Some(out.stdout[i + mark.len()..].to_vec()),
        ),
        None => (&out.stdout[..], None),
    };
    let text = String::from_utf8_lossy(head).into_owned();
    check_principals(&text, want)?;
    let path = tagged(&text, "EFF").unwrap_or_default().to_string();
    let me = tagged(&text, "ME")
        .and_then(parse_id)
        .unwrap_or((0, 0, String::new(), String::new()));
    let (owner_id, group_id) = principal_ids(&text, want);
    Ok(Dest {
        write_path: tagged(&text, "RP")
            .map(str::to_string)
            .unwrap_or_else(|| path.clone()),
        path,
        stat: parse_stat(&text, "D").map_err(ModuleError::from)?,
        content,
        sha1: tagged(&text, "SUM").map(str::to_string),
        parent_exists: tagged(&text, "PD").is_some(),
        me,
        owner_id,
        group_id,
        text,
    })
}

/// uid, gid, user and group from `id`'s `uid=0(root) gid=0(root) ...`; a
/// name is empty when the id has none.
fn parse_id(line: &str) -> Option<(u32, u32, String, String)> {
    let field = |key: &str| -> Option<(u32, String)> {
        let v = line.split(' ').find_map(|w| w.strip_prefix(key))?;
        match v.split_once('(') {
            Some((n, name)) => Some((n.parse().ok()?, name.trim_end_matches(')').to_string())),
            None => Some((v.parse().ok()?, String::new())),
        }
    };
    let (uid, user) = field("uid=")?;
    let (gid, group) = field("gid=")?;
    Some((uid, gid, user, group))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether bytes can be shown as a text diff.
pub fn is_text(b: &[u8]) -> bool {
    !b.contains(&0) && std::str::from_utf8(b).is_ok()
}

/// A text diff of a file's content, or `None` for binary or large files.
pub fn diff(path: &str, before: &[u8], after: &[u8]) -> Option<FileDiff> {
    let small = before.len() as u64 <= DIFF_LIMIT && after.len() as u64 <= DIFF_LIMIT;
    (small && is_text(before) && is_text(after)).then(|| FileDiff {
        path: path.to_string(),
        before: String::from_utf8_lossy(before).into_owned(),
        after: String::from_utf8_lossy(after).into_owned(),
    })
}

/// Copy `path` to `path.<pid>.<time>~` as Ansible's `backup_local` names
/// it; returns the backup's name.
pub fn backup(host: &mut dyn Host, path: &str) -> Result<String, ModuleError> {
    let pw = quote(path);
    let script = format!(
        "b={pw}.$$.$(date +%Y-%m-%d@%H:%M:%S)~; cp -p -- {pw} \"$b\" && printf '%s\\n' \"$b\""
    );
    let out = host.run(&script, None)?;
    if !out.success() {
        return Err(ModuleError::failed(format!(
            "could not back up {path}: {}",
            out.stderr_str().trim_end()
        )));
    }
    Ok(out.stdout_str().trim_end_matches('\n').to_string())
}

/// Which of Ansible's two failure shapes a module reports when `validate`
/// rejects the new content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidateStyle {
    /// `copy` and `template`: msg `failed to validate`, with `exit_status`,
    /// `stdout` and `stderr` in the result.
    Copy,
    /// `lineinfile` and `blockinfile`: msg `failed to validate: rc:N
    /// error:STDERR` and nothing else.
    Edit,
}

/// What the temp file that `validate` checks is filled from.
#[derive(Debug, Clone, Copy)]
pub enum Fill<'a> {
    /// The new content, sent on stdin.
    Bytes(&'a [u8]),
    /// A file already on the host (`remote_src`).
    HostFile(&'a str),
}

/// Run `validate` (a command with `%s`) on the new content written to a
/// temp file next to `path`, before the real file is touched. The command
/// is split like `command`'s and every word quoted; `%s` becomes the temp
/// file. `prepare` (shell lines on `"$t"`) runs first, so a check that
/// looks at the owner or mode sees the wanted ones, as in Ansible's copy.
pub fn validate(
    host: &mut dyn Host,
    module: &'static str,
    style: ValidateStyle,
    validate: &str,
    path: &str,
    fill: Fill<'_>,
    prepare: &str,
) -> Result<(), ModuleError> {
    let cmd = validate_command(module, validate)?;
    let dir = match path.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => path[..i].to_string(),
        None => ".".to_string(),
    };
    let (fill_cmd, stdin) = match fill {
        Fill::Bytes(b) => ("cat > \"$t\"".to_string(), Some(b)),
        Fill::HostFile(src) => (format!("cat -- {} > \"$t\"", quote(src)), None),
    };
    // A failure before the check itself is a host error, not a rejection.
    let script = format!(
        "t=$(mktemp {}/.herd.validate.XXXXXX) || exit 1; trap 'rm -f \"$t\"' EXIT; trap 'exit 143' HUP INT TERM\n\
         ( set -e\n{fill_cmd}\n{prepare}\n) >&2 || {{ echo HERD_VALIDATE_PREP >&2; exit 125; }}\n{cmd}",
        quote(&dir),
    );
    let out = host.run(&script, stdin)?;
    if out.success() {
        return Ok(());
    }
    let stderr = out.stderr_str();
    if out.rc == 125 && stderr.trim_end().ends_with("HERD_VALIDATE_PREP") {
        return Err(ModuleError::Host(crate::HostError::Command {
            action: "prepare the file to validate",
            rc: out.rc,
            stderr: stderr
                .trim_end()
                .trim_end_matches("HERD_VALIDATE_PREP")
                .to_string(),
        }));
    }
    let mut result = Map::new();
    let msg = match style {
        ValidateStyle::Copy => {
            result.insert("exit_status".into(), json!(out.rc));
            result.insert("stdout".into(), json!(out.stdout_str()));
            result.insert("stderr".into(), json!(stderr));
            "failed to validate".to_string()
        }
        ValidateStyle::Edit => format!("failed to validate: rc:{} error:{}", out.rc, stderr),
    };
    Err(ModuleError::Failed { msg, result })
}

/// A `validate` command as a shell command line: split like `command`'s
/// free form, every word quoted, and `%s` replaced by `"$t"` (the shell
/// variable holding the file to check).
pub fn validate_command(module: &'static str, validate: &str) -> Result<String, ModuleError> {
    let invalid = |reason: String| {
        ModuleError::Params(crate::ParamError::Invalid {
            module,
            path: "validate".into(),
            reason,
        })
    };
    if !validate.contains("%s") {
        // Ansible's message, which names the command as written.
        return Err(ModuleError::failed(format!(
            "validate must contain %s: {validate}"
        )));
    }
    let words = split(validate).map_err(|e| invalid(e.to_string()))?;
    Ok(words
        .iter()
        .map(|w| w.split("%s").map(quote).collect::<Vec<_>>().join("\"$t\""))
        .collect::<Vec<_>>()
        .join(" "))
}

/// The numeric mode to write: the wanted one resolved against the current
/// file, or `None` to keep the current mode (write_file keeps it).
pub fn resolve_mode(want: &WantedAttrs, dest: &Dest) -> Option<u32> {
    let current = dest.stat.as_ref().map(|s| s.mode);
    want.mode
        .as_ref()
        .filter(|m| **m != Mode::Preserve)
        .and_then(|m| m.resolve(current, false))
}

/// The attributes to set on a written file: the wanted owner and group, and `mode`.
pub fn file_attrs(want: &WantedAttrs, mode: Option<u32>) -> FileAttrs {
    FileAttrs {
        owner: want.owner.clone(),
        group: want.group.clone(),
        mode: mode.map(mode_str),
    }
}

/// Ansible's file result keys for a file just written with `want`.
pub fn written_result(
    key: &str,
    dest: &Dest,
    want: &WantedAttrs,
    mode: Option<u32>,
    size: u64,
) -> Map<String, Value> {
    let prev = dest.stat.as_ref();
    let (me_uid, me_gid, me_user, me_group) = &dest.me;
    let mode = mode.or(prev.map(|s| s.mode)).unwrap_or(0o644);
    let owner = want
        .owner
        .clone()
        .or(prev.map(|s| s.owner.clone()))
        .unwrap_or_else(|| me_user.clone());
    let group = want
        .group
        .clone()
        .or(prev.map(|s| s.group.clone()))
        .unwrap_or_else(|| me_group.clone());
    let uid = match &want.owner {
        Some(_) => dest.owner_id.unwrap_or(*me_uid),
        None => prev.map_or(*me_uid, |s| s.uid),
    };
    let gid = match &want.group {
        Some(_) => dest.group_id.unwrap_or(*me_gid),
        None => prev.map_or(*me_gid, |s| s.gid),
    };
    let mut m = Map::new();
    m.insert(key.into(), json!(dest.path));
    m.insert("state".into(), json!("file"));
    m.insert("mode".into(), json!(mode_str(mode)));
    m.insert("owner".into(), json!(owner));
    m.insert("group".into(), json!(group));
    m.insert("uid".into(), json!(uid));
    m.insert("gid".into(), json!(gid));
    m.insert("size".into(), json!(size));
    m
}

/// What a file the module creates looks like before its attributes are
/// set: mode 0644 (umask 022), owned by whoever the module runs as.
pub fn fresh_file_stat(dest: &Dest) -> crate::probe::FileStat {
    let (uid, gid, owner, group) = dest.me.clone();
    crate::probe::FileStat {
        kind: crate::probe::Kind::File,
        mode: 0o644,
        uid,
        gid,
        owner,
        group,
        size: 0,
        inode: 0,
        dev: 0,
        nlink: 1,
        atime: 0,
        mtime: 0,
        ctime: 0,
    }
}

/// A planned edit of a text file (lineinfile, blockinfile), kept in
/// `Plan.state` so apply needs no second probe.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Edit {
    /// The path the task names.
    pub path: String,
    /// The path actually written (the link's target when following a symlink).
    pub write_path: String,
    /// The new content (base64), or `None` when only attributes change.
    pub content_b64: Option<String>,
    /// Whether it exists now.
    pub exists: bool,
    /// The parent directory is missing and must be created (`create`).
    pub mkdir: bool,
    /// Its permission bits now, when it exists.
    pub mode: Option<u32>,
}

impl Edit {
    /// The edit of `dest` to `content` with `mode`.
    pub fn new(dest: &Dest, content: Option<&[u8]>, mode: Option<u32>) -> Edit {
        use base64::Engine as _;
        Edit {
            path: dest.path.clone(),
            write_path: dest.write_path.clone(),
            content_b64: content.map(|c| base64::engine::general_purpose::STANDARD.encode(c)),
            exists: dest.exists(),
            mkdir: !dest.parent_exists,
            mode,
        }
    }

    /// Kept in the plan for apply (see `Plan::keep_state`).
    pub fn to_state(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Read back what [`Edit::to_state`] kept; an error for a plan of another module.
    pub fn from_state(module: &'static str, v: &Value) -> Result<Edit, ModuleError> {
        serde_json::from_value(v.clone())
            .map_err(|_| ModuleError::failed(format!("{module}: apply called without a plan")))
    }

    /// Make the edit: create the parent, back up, validate, then write
    /// atomically (or only set attributes). Returns the backup's name.
    pub fn apply(
        &self,
        host: &mut dyn Host,
        module: &'static str,
        want: &WantedAttrs,
        backup_wanted: bool,
        validate_cmd: Option<&str>,
    ) -> Result<Option<String>, ModuleError> {
        use base64::Engine as _;
        let want = WantedAttrs {
            mode: self.mode.map(Mode::Octal),
            ..want.clone()
        };
        let Some(b64) = &self.content_b64 else {
            let script = want.apply_script(&quote(&self.write_path), self.mode, false);
            run_checked(host, "set attributes", &script)?;
            return Ok(None);
        };
        let content = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| ModuleError::failed(format!("{module}: corrupt plan state")))?;
        if self.mkdir {
            let dir = match self.write_path.rfind('/') {
                Some(0) => "/".to_string(),
                Some(i) => self.write_path[..i].to_string(),
                None => ".".to_string(),
            };
            run_checked(
                host,
                "create directory",
                &format!("mkdir -p -- {}", quote(&dir)),
            )?;
        }
        let backup_file = if backup_wanted && self.exists {
            Some(backup(host, &self.write_path)?)
        } else {
            None
        };
        if let Some(v) = validate_cmd {
            validate(
                host,
                module,
                ValidateStyle::Edit,
                v,
                &self.write_path,
                Fill::Bytes(&content),
                "",
            )?;
        }
        host.write_file(&self.write_path, &content, &file_attrs(&want, self.mode))?;
        Ok(backup_file)
    }

    /// The whole `apply` of a module that planned an [`Edit`] (blockinfile,
    /// replace): make it, and report the plan's result with the backup's
    /// name as `backup_file`.
    pub fn apply_planned(
        module: &'static str,
        plan: &crate::Plan,
        host: &mut dyn Host,
        want: &WantedAttrs,
        backup_wanted: bool,
        validate_cmd: Option<&str>,
    ) -> Result<crate::Outcome, ModuleError> {
        let edit = Edit::from_state(module, &plan.state)?;
        let backup = edit.apply(host, module, want, backup_wanted, validate_cmd)?;
        let mut result = plan.result.clone();
        if let Some(b) = backup {
            result.insert("backup_file".into(), json!(b));
        }
        Ok(crate::Outcome::changed_with_result_msg(result))
    }
}

/// Run a script under `set -e`; a failure is a host command error.
pub fn run_checked(
    host: &mut dyn Host,
    action: &'static str,
    script: &str,
) -> Result<(), ModuleError> {
    if script.trim().is_empty() {
        return Ok(());
    }
    let out = host.run(&format!("set -e\n{script}"), None)?;
    if out.success() {
        Ok(())
    } else {
        Err(ModuleError::Host(crate::HostError::Command {
            action,
            rc: out.rc,
            stderr: out.stderr_str(),
        }))
    }
}

/// Split like Python's `readlines`: every line keeps its `\n`.
pub fn lines_of(content: &[u8]) -> Vec<Vec<u8>> {
    content
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// A line without its trailing `\r`/`\n`s (Python's `rstrip(b'\r\n')`).
pub fn rstrip_eol(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    &line[..end]
}

/// Common plan checks of the line-editing modules: the path is not a
/// directory, and exists unless `create`.
pub fn check_editable(dest: &Dest, create: bool) -> Result<(), ModuleError> {
    if dest.is_dir() {
        return Err(ModuleError::failed(format!(
            "Path {} is a directory !",
            dest.path
        )));
    }
    if !dest.exists() && !create {
        return Err(ModuleError::failed(format!(
            "Destination {} does not exist !",
            dest.path
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{host, path_in};

    #[test]
    fn probe_reads_small_files_and_sums_large_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        std::fs::write(&f, "a\nb\n").expect("write");
        let setup = format!("p={}", quote(&f));
        let want = WantedAttrs::default();
        let d = probe(&mut host(), &setup, false, &want, Read::UpTo(100), "").expect("probe");
        assert_eq!(d.content.as_deref(), Some(&b"a\nb\n"[..]));
        assert!(d.parent_exists && d.exists());
        let d = probe(&mut host(), &setup, false, &want, Read::UpTo(2), "").expect("probe");
        assert_eq!(d.content, None);
        assert_eq!(d.checksum(), Some(sha1_hex(b"a\nb\n")));
        let setup = format!("p={}", quote(&path_in(&dir, "none/x")));
        let d = probe(&mut host(), &setup, false, &want, Read::All, "").expect("probe");
        assert!(!d.exists() && !d.parent_exists && d.content.is_none());
    }

    #[test]
    fn probe_finds_the_parent_and_who_we_are_without_extra_processes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let want = WantedAttrs::default();
        let probe_at = |p: &str| {
            let setup = format!("p={}", quote(p));
            probe(&mut host(), &setup, false, &want, Read::All, "").expect("probe")
        };
        // The parent directory, as dirname would find it.
        assert!(probe_at(&path_in(&dir, "new")).parent_exists);
        assert!(!probe_at(&path_in(&dir, "no/new")).parent_exists);
        assert!(probe_at("/herd-no-such-file-at-the-root").parent_exists);
        assert!(probe_at("herd-relative-name").parent_exists);
        // Who we are: asked only when the file is about to be created.
        let new = probe_at(&path_in(&dir, "new"));
        let uid = String::from_utf8(
            std::process::Command::new("id")
                .arg("-u")
                .output()
                .expect("id")
                .stdout,
        )
        .expect("utf8");
        assert_eq!(new.me.0.to_string(), uid.trim());
        assert!(!new.me.2.is_empty());
        let f = path_in(&dir, "f");
        std::fs::write(&f, "x").expect("write");
        assert!(!probe_at(&f).text.contains("ME "));
    }

    #[test]
    fn parses_id_output() {
        assert_eq!(
            parse_id("uid=0(root) gid=0(root) groups=0(root)"),
            Some((0, 0, "root".into(), "root".into()))
        );
        assert_eq!(
            parse_id("uid=1001(deploy) gid=27(sudo) groups=27(sudo),1001(deploy)"),
            Some((1001, 27, "deploy".into(), "sudo".into()))
        );
        assert_eq!(
            parse_id("uid=4242 gid=4242 groups=4242"),
            Some((4242, 4242, String::new(), String::new()))
        );
        assert_eq!(parse_id("id: cannot find name"), None);
    }

    #[test]
    fn validate_runs_on_a_temp_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "f");
        let check = |cmd: &str, content: &[u8]| {
            validate(
                &mut host(),
                "copy",
                ValidateStyle::Copy,
                cmd,
                &f,
                Fill::Bytes(content),
                "",
            )
        };
        assert!(check("grep -q ok %s", b"ok\n").is_ok());
        let err = check("grep -q ok %s", b"bad\n").expect_err("bad");
        assert!(err.to_string().starts_with("failed to validate"));
        assert!(check("true", b"").is_err());
        // A failure preparing the file is not reported as a rejection.
        let err = validate(
            &mut host(),
            "copy",
            ValidateStyle::Copy,
            "true %s",
            &f,
            Fill::HostFile("/nonexistent/herd"),
            "",
        )
        .expect_err("no source");
        assert!(matches!(err, ModuleError::Host(_)), "{err:?}");
        // No temp file is left behind.
        assert_eq!(
            std::fs::read_dir(dir.path())
                .map(std::iter::Iterator::count)
                .ok(),
            Some(0)
        );
    }
}
