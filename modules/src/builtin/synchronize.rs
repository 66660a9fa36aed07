//! `synchronize` (ansible.posix): rsync between the controller and the host.
//!
//! Owns building the rsync command line as Ansible's module builds it (the
//! same options in the same order, the same `<<CHANGED>>%i %n%L` output
//! format, the command string split into words as Ansible's `run_command`
//! splits it, so `rsync_opts` are read the same way), running it on the
//! controller, and reading its itemized output into Ansible's result keys
//! (`changed`, `cmd`, `msg`, `rc`, `stdout_lines`).
//!
//! rsync's remote shell is herd's own connection: the module declares
//! [`Module::CONTROLLER_PROCESS`], and rsync's `--rsh` is the herd relay
//! (see [`crate::relay`]), which carries rsync's pipe over an exec channel
//! of the host's session. Passwords, jump hosts, host-key checking and the
//! user are the connection's, whatever `private_key`, `dest_port`,
//! `verify_host`, `use_ssh_args` and `ssh_connection_multiplexing` say.
//!
//! Check mode: the plan runs rsync with `--dry-run`, as Ansible's module
//! does in check mode, and reports what rsync would change. Outside check
//! mode the plan runs nothing and the apply runs rsync once.
//!
//! Differences from Ansible: `delegate_to` is refused (Ansible runs rsync
//! on the delegate and swaps the roles of the hosts); a `--rsh` in
//! `rsync_opts` is used as given (as in Ansible) but then the connection's
//! settings do not apply; `_ssh_args`, `private_key`, `dest_port`,
//! `verify_host`, `set_remote_user`, `ssh_connection_multiplexing` and
//! `use_ssh_args` are accepted and do not change how the host is reached
//! (the relay uses the open session); rsync:// URLs are not supported;
//! `--diff` shows no `prepared` text.

use std::process::Command;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::account::de_opt_list;
use crate::params::{de_bool, de_opt_bool, de_opt_u64, yes};
use crate::relay::{self, ControllerContext};
use crate::shell_quote::{quote, split};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

/// What marks an itemized line in rsync's output (`--out-format`).
const CHANGED_MARKER: &str = "<<CHANGED>>";

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `mode` parameter's values.
pub enum SyncMode {
    #[default]
    /// From the controller to the host.
    Push,
    /// From the host to the controller.
    Pull,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `synchronize`: what `herd doc` shows, and what the parser takes.
pub struct SynchronizeParams {
    /// The source: on the controller when pushing (a relative path is looked for in `files/`
    /// and the playbook's directory), on the host when pulling. A trailing `/` copies the
    /// directory's contents, as rsync does.
    pub src: String,
    /// The destination: on the host when pushing, on the controller when pulling.
    pub dest: String,
    /// `push` (controller to host) or `pull`.
    #[serde(default)]
    pub mode: SyncMode,
    /// Delete files in `dest` that are not in `src` (`--delete-after`).
    #[serde(default, deserialize_with = "de_bool")]
    pub delete: bool,
    /// Archive mode (`--archive`): recursive, links, perms, times, owner, group.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub archive: bool,
    /// Compare by checksum, not by size and time.
    #[serde(default, deserialize_with = "de_bool")]
    pub checksum: bool,
    /// Compress the transfer.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub compress: bool,
    /// Update only files that already exist in `dest` (`--existing`).
    #[serde(default, deserialize_with = "de_bool")]
    pub existing_only: bool,
    /// Transfer directories without recursing (`--dirs`).
    #[serde(default, deserialize_with = "de_bool")]
    pub dirs: bool,
    /// Recurse into directories (default: as `archive` says).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub recursive: Option<bool>,
    /// Copy symlinks as symlinks (default: as `archive` says).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub links: Option<bool>,
    /// Copy what symlinks point to instead (`--copy-links`).
    #[serde(default, deserialize_with = "de_bool")]
    pub copy_links: bool,
    /// Preserve permissions (default: as `archive` says).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub perms: Option<bool>,
    /// Preserve modification times (default: as `archive` says).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub times: Option<bool>,
    /// Preserve the owner (default: as `archive` says; needs root on the receiving side).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub owner: Option<bool>,
    /// Preserve the group (default: as `archive` says).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub group: Option<bool>,
    /// rsync's I/O timeout in seconds (`--timeout`); 0: none.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub rsync_timeout: Option<u64>,
    /// More rsync options, each one word or several (split as a shell would).
    #[serde(default, deserialize_with = "de_opt_list")]
    pub rsync_opts: Option<Vec<String>>,
    /// The rsync command on the host (`sudo rsync`); under `become` with sudo it defaults to
    /// `sudo -u USER rsync`, as in Ansible.
    pub rsync_path: Option<String>,
    /// Keep partially transferred files (`--partial`).
    #[serde(default, deserialize_with = "de_bool")]
    pub partial: bool,
    /// Put updated files in place at the end (`--delay-updates`).
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub delay_updates: bool,
    /// Hard-link unchanged files from these directories (`--link-dest`).
    #[serde(default, deserialize_with = "de_opt_list")]
    pub link_dest: Option<Vec<String>>,
    /// Accepted; the connection's own host-key checking applies.
    #[serde(default, deserialize_with = "de_bool")]
    pub verify_host: bool,
    /// Accepted; the connection's own user is used.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub set_remote_user: bool,
    /// Accepted; the connection's own settings are used.
    #[serde(default, deserialize_with = "de_bool")]
    pub use_ssh_args: bool,
    /// Accepted; the transfer runs on the open session anyway.
    #[serde(default, deserialize_with = "de_bool")]
    pub ssh_connection_multiplexing: bool,
    /// Accepted; the connection's own key is used.
    pub private_key: Option<String>,
    /// Accepted; the connection's own port is used.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub dest_port: Option<u64>,
    /// Passed by the engine.
    #[serde(rename = "_controller")]
    #[schemars(skip)]
    pub controller: Option<ControllerContext>,
}

/// The `synchronize` module.
pub struct Synchronize;

/// The rsync run a task asks for: its words and the string Ansible shows
/// as `cmd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsyncCommand {
    /// The command line as Ansible builds it (`cmd`).
    pub cmdstr: String,
    /// Its words, split as Ansible's `run_command` splits a string.
    pub argv: Vec<String>,
    /// Whether the relay is rsync's remote shell (no `--rsh` of the user's).
    pub uses_relay: bool,
}

/// What rsync's itemized output says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Itemized {
    /// Whether anything changed, as Ansible's module decides it.
    pub changed: bool,
    /// The output without the markers (`msg`).
    pub msg: String,
    /// Its non-empty lines.
    pub lines: Vec<String>,
}

/// Read rsync's output: a marker means a change, except with `link_dest`,
/// where `-vv` marks unchanged files too and only a `.` item is no change.
pub fn read_itemized(out: &str, link_dest: bool) -> Itemized {
    let changed = if link_dest {
        !out.contains(&format!("{CHANGED_MARKER}."))
    } else {
        out.contains(CHANGED_MARKER)
    };
    let msg = out.replace(CHANGED_MARKER, "");
    let lines = msg
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    Itemized {
        changed,
        msg,
        lines,
    }
}

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Synchronize::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// A controller path as Ansible's action finds it: absolute or `host:`
/// paths as they are; a relative one in the first search directory that
/// has it, else under the last one (the playbook's directory). A trailing
/// `/` is kept.
pub fn controller_path(path: &str, search: &[String]) -> String {
    if path.contains(':') || path.starts_with('/') {
        return path.to_string();
    }
    let trimmed = path.trim_end_matches('/');
    let found = search
        .iter()
        .map(|d| std::path::Path::new(d).join(trimmed))
        .find(|p| p.exists())
        .or_else(|| search.last().map(|d| std::path::Path::new(d).join(trimmed)));
    let mut out = match found {
        Some(p) => p.display().to_string(),
        None => path.to_string(),
    };
    if path.ends_with('/') && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// The host side's `[user@]host:path`, as Ansible formats it. The host
/// name is only a label here (the relay ignores it), but it keeps `cmd`
/// readable and makes rsync treat the path as remote.
fn remote_spec(host: &str, user: Option<&str>, path: &str) -> String {
    let user_prefix = user.map(|u| format!("{u}@")).unwrap_or_default();
    if host.contains(':') {
        return format!("[{user_prefix}{host}]:{path}");
    }
    if !path.contains(':') {
        format!("{user_prefix}{host}:{path}")
    } else if !path.contains('@') {
        format!("{user_prefix}{path}")
    } else {
        path.to_string()
    }
}

/// Build the rsync command as Ansible's module does, with `rsh` as the
/// remote shell unless `rsync_opts` name one.
pub fn build_command(
    p: &SynchronizeParams,
    cx: &ControllerContext,
    host_name: &str,
    rsh: &str,
) -> Result<RsyncCommand, ModuleError> {
    let (src, dest) = endpoints(p, cx, host_name)?;
    let mut cmd: Vec<String> = vec!["rsync".into()];
    let mut push = |s: &str| cmd.push(s.to_string());
    if p.delay_updates {
        push("--delay-updates");
        push("-F");
    }
    if p.compress {
        push("--compress");
    }
    if let Some(t) = p.rsync_timeout.filter(|&t| t > 0) {
        push(&format!("--timeout={t}"));
    }
    if cx.check_mode {
        push("--dry-run");
    }
    if p.delete {
        push("--delete-after");
    }
    if p.existing_only {
        push("--existing");
    }
    if p.checksum {
        push("--checksum");
    }
    if p.copy_links {
        push("--copy-links");
    }
    let flags = [
        (p.recursive, "recursive"),
        (p.links, "links"),
        (p.perms, "perms"),
        (p.times, "times"),
        (p.owner, "owner"),
        (p.group, "group"),
    ];
    if p.archive {
        push("--archive");
        for (v, name) in flags {
            if v == Some(false) {
                push(&format!("--no-{name}"));
            }
        }
    } else {
        for (v, name) in flags {
            if v == Some(true) {
                push(&format!("--{name}"));
            }
        }
    }
    if p.dirs {
        push("--dirs");
    }
    let opts = p.rsync_opts.clone().unwrap_or_default();
    let user_rsh = opts.iter().any(|o| o.contains("--rsh"));
    if !user_rsh {
        push(&format!("--rsh={}", quote(rsh)));
    }
    let rsync_path = p.rsync_path.clone().or_else(|| {
        cx.become_user.as_ref().map(|u| {
            if u.is_empty() {
                "sudo rsync".to_string()
            } else {
                format!("sudo -u {u} rsync")
            }
        })
    });
    if let Some(rp) = &rsync_path {
        push(&format!("--rsync-path={}", quote(rp)));
    }
    for o in &opts {
        push(o);
    }
    if p.partial {
        push("--partial");
    }
    if let Some(links) = &p.link_dest {
        push("-H");
        push("-vv");
        let dest_dir = std::path::Path::new(&dest)
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        for l in links {
            if !dest_dir.is_empty() && dest_dir.starts_with(l.as_str()) {
                return Err(ModuleError::failed(format!(
                    "Hardlinking into a subdirectory of the source would cause recursion. {dest_dir} and {dest}"
                )));
            }
            push(&format!("--link-dest={l}"));
        }
    }
    push(&format!(
        "--out-format={}",
        quote(&format!("{CHANGED_MARKER}%i %n%L"))
    ));
    push(&quote(&src));
    push(&quote(&dest));
    let cmdstr = cmd.join(" ");
    let argv = split(&cmdstr).map_err(|e| invalid("rsync_opts", e.to_string()))?;
    Ok(RsyncCommand {
        cmdstr,
        argv,
        uses_relay: !user_rsh,
    })
}

/// `src` and `dest` as rsync gets them: the controller's side resolved,
/// the host's side as `[user@]host:path`.
fn endpoints(
    p: &SynchronizeParams,
    cx: &ControllerContext,
    host_name: &str,
) -> Result<(String, String), ModuleError> {
    for (name, v) in [("src", &p.src), ("dest", &p.dest)] {
        if v.starts_with("rsync://") {
            return Err(invalid(name, "rsync:// URLs are not supported"));
        }
        if v.is_empty() {
            return Err(invalid(name, "must not be empty"));
        }
    }
    let user = cx.remote_user.as_deref().filter(|_| p.set_remote_user);
    Ok(match p.mode {
        SyncMode::Push => (
            controller_path(&p.src, &cx.search),
            remote_spec(host_name, user, &p.dest),
        ),
        SyncMode::Pull => (
            remote_spec(host_name, user, &p.src),
            controller_path(&p.dest, &cx.search),
        ),
    })
}

/// The host name rsync sees: a label for `cmd`, plain enough that rsync
/// reads it as a host.
fn host_label(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        name.to_string()
    } else {
        "host".to_string()
    }
}

/// Run rsync for `p` through the host and read its output into the
/// result; a failing rsync fails the task with its standard error.
fn run_rsync(
    p: &SynchronizeParams,
    cx: &ControllerContext,
    host: &mut dyn Host,
) -> Result<(Itemized, Map<String, Value>), ModuleError> {
    let label = host_label(host.name());
    let rsh_for = |fd| relay::relay_command(&cx.relay, fd);
    // The command shown is the one built for the real descriptor; build it
    // once with a placeholder first to refuse bad parameters before
    // anything starts.
    build_command(p, cx, &label, &rsh_for(0))?;
    let mut shown = String::new();
    let out = relay::run_through(host, |fd| {
        let built = build_command(p, cx, &label, &rsh_for(fd));
        let argv = match built {
            Ok(b) => {
                shown = b.cmdstr;
                b.argv
            }
            // Already built once above with the same parameters.
            Err(_) => vec!["false".into()],
        };
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    })
    .map_err(|e| ModuleError::failed(e.to_string()))?;
    let mut result = Map::new();
    result.insert("cmd".into(), Value::from(shown.clone()));
    result.insert("rc".into(), Value::from(out.rc));
    if out.rc != 0 {
        let mut msg = String::new();
        if let Some(remote) = &out.remote {
            msg.push_str(&remote.stderr_str());
        }
        msg.push_str(&String::from_utf8_lossy(&out.stderr));
        return Err(ModuleError::Failed { msg, result });
    }
    let items = read_itemized(&String::from_utf8_lossy(&out.stdout), p.link_dest.is_some());
    result.insert("changed".into(), Value::Bool(items.changed));
    result.insert("msg".into(), Value::from(items.msg.clone()));
    result.insert(
        "stdout_lines".into(),
        Value::Array(items.lines.iter().cloned().map(Value::from).collect()),
    );
    Ok((items, result))
}

/// The engine's context, or the reason the task cannot run.
fn context(p: &SynchronizeParams) -> Result<&ControllerContext, ModuleError> {
    let cx = p.controller.as_ref().ok_or_else(|| {
        ModuleError::failed("synchronize needs the engine's controller context (run it with herd)")
    })?;
    if cx.delegated {
        return Err(ModuleError::failed(
            "synchronize with delegate_to is not supported: herd runs rsync on the controller against the task's host",
        ));
    }
    Ok(cx)
}

impl Module for Synchronize {
    const NAME: &'static str = "synchronize";
    type Params = SynchronizeParams;
    const CONTROLLER_PROCESS: bool = true;

    const DOC_SHORT: &'static str =
        "Copy directory trees between the controller and a host with rsync";
    const DOC_LONG: &'static str =
        "Runs the controller's `rsync` with herd's own connection as its remote \
shell: `push` copies `src` on the controller to `dest` on the host, `pull` the other way. The \
options are Ansible's (`archive` and its parts, `delete`, `checksum`, `rsync_opts`, ...), and \
`changed` comes from rsync's itemized output. rsync must be installed on both sides. Under \
`become` (sudo), the host's rsync runs as `sudo -u USER rsync` unless `rsync_path` is set; it \
needs sudo without a password, as in Ansible. Check mode runs rsync with `--dry-run`.";
    const DOC_EXAMPLE: &'static str = "- synchronize:\n    src: site/\n    dest: /srv/www/\n    delete: true\n    rsync_opts:\n      - --exclude=*.tmp\n";
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("changed", "whether rsync's itemized output listed a change"),
        ("cmd", "the rsync command line"),
        ("msg", "rsync's itemized output"),
        ("rc", "rsync's exit status"),
        ("stdout_lines", "the itemized output's lines"),
    ];

    fn plan(&self, p: &SynchronizeParams, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let cx = context(p)?;
        if !cx.check_mode {
            // Refuse bad parameters now; rsync itself runs once, in apply.
            build_command(p, cx, &host_label(host.name()), "relay")?;
            return Ok(Plan::empty().change(format!("rsync {} to {}", p.src, p.dest)));
        }
        let (items, result) = run_rsync(p, cx, host)?;
        let mut plan = Plan {
            result,
            ..Plan::default()
        };
        if items.changed {
            plan.changes = if items.lines.is_empty() {
                vec!["rsync would change files".into()]
            } else {
                items.lines.clone()
            };
        }
        Ok(plan)
    }

    fn apply(
        &self,
        p: &SynchronizeParams,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let cx = context(p)?;
        let (items, result) = run_rsync(p, cx, host)?;
        Ok(Outcome::changed_if(items.changed, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalHost;
    use crate::DynModule;
    use serde_json::json;

    fn params(v: Value) -> SynchronizeParams {
        crate::module::parse_params::<SynchronizeParams>("synchronize", &v).expect("params")
    }

    fn cx() -> ControllerContext {
        ControllerContext {
            relay: vec!["/usr/bin/herd".into(), relay::SUBCOMMAND.into()],
            search: vec!["/play/files".into(), "/play".into()],
            ..ControllerContext::default()
        }
    }

    #[test]
    fn the_default_command_is_ansibles() {
        let p = params(json!({"src": "/srv/site/", "dest": "/var/www"}));
        let c = build_command(&p, &cx(), "web1", "RELAY 3").expect("built");
        assert_eq!(
            c.cmdstr,
            "rsync --delay-updates -F --compress --archive --rsh='RELAY 3' \
             --out-format='<<CHANGED>>%i %n%L' /srv/site/ web1:/var/www"
        );
        assert_eq!(
            c.argv,
            [
                "rsync",
                "--delay-updates",
                "-F",
                "--compress",
                "--archive",
                "--rsh=RELAY 3",
                "--out-format=<<CHANGED>>%i %n%L",
                "/srv/site/",
                "web1:/var/www"
            ]
        );
        assert!(c.uses_relay);
    }

    #[test]
    fn every_flag_in_ansibles_order() {
        let p = params(json!({
            "src": "/data", "dest": "backup/", "mode": "pull", "delete": "yes",
            "archive": false, "recursive": true, "links": true, "perms": "yes",
            "times": false, "owner": true, "group": true, "checksum": true,
            "compress": false, "existing_only": true, "dirs": true, "copy_links": true,
            "rsync_timeout": "30", "partial": true, "delay_updates": false,
            "rsync_opts": ["--exclude=*.tmp", "--exclude '*.bak'"],
            "rsync_path": "sudo rsync", "link_dest": ["/snap/1"],
        }));
        let mut cx = cx();
        cx.check_mode = true;
        cx.remote_user = Some("deploy".into());
        let c = build_command(&p, &cx, "web1", "R").expect("built");
        assert_eq!(
            c.cmdstr,
            "rsync --timeout=30 --dry-run --delete-after --existing --checksum --copy-links \
             --recursive --links --perms --owner --group --dirs --rsh=R \
             --rsync-path='sudo rsync' --exclude=*.tmp --exclude '*.bak' --partial -H -vv \
             --link-dest=/snap/1 --out-format='<<CHANGED>>%i %n%L' deploy@web1:/data \
             /play/backup/"
        );
        // The options are split as Ansible's run_command splits them.
        assert!(c.argv.contains(&"*.bak".to_string()), "{:?}", c.argv);
        assert!(c.argv.contains(&"--rsync-path=sudo rsync".to_string()));
    }

    #[test]
    fn archive_parts_switched_off_and_become() {
        let p = params(
            json!({"src": "/a", "dest": "/b", "links": "no", "owner": false,
            "group": false, "perms": false, "times": false, "recursive": false}),
        );
        let mut cx = cx();
        cx.become_user = Some("root".into());
        let c = build_command(&p, &cx, "h", "R").expect("built");
        assert!(
            c.cmdstr.contains(
                "--archive --no-recursive --no-links --no-perms --no-times --no-owner --no-group --rsh=R --rsync-path='sudo -u root rsync'"
            ),
            "{}",
            c.cmdstr
        );
    }

    #[test]
    fn a_remote_shell_in_rsync_opts_replaces_the_relay() {
        let p = params(json!({"src": "/a", "dest": "/b",
            "rsync_opts": "--rsh=docker exec -i box"}));
        let c = build_command(&p, &cx(), "h", "R").expect("built");
        assert!(!c.uses_relay);
        assert!(!c.cmdstr.contains("--rsh=R"), "{}", c.cmdstr);
    }

    #[test]
    fn link_dest_into_its_own_source_is_refused() {
        // Checked against the controller's side, as Ansible checks it (a
        // `host:` dest never matches there).
        let p = params(
            json!({"src": "/a", "dest": "/snap/new/x", "link_dest": ["/snap"],
            "mode": "pull"}),
        );
        let e = build_command(&p, &cx(), "h", "R").expect_err("recursion");
        assert!(e.to_string().contains("would cause recursion"), "{e}");
    }

    #[test]
    fn unclosed_quotes_in_rsync_opts_are_a_parameter_error() {
        let p = params(json!({"src": "/a", "dest": "/b", "rsync_opts": ["--exclude='x"]}));
        let e = build_command(&p, &cx(), "h", "R").expect_err("unsplittable");
        assert!(matches!(e, ModuleError::Params(_)), "{e}");
    }

    #[test]
    fn rsync_urls_and_unknown_parameters_are_refused() {
        let p = params(json!({"src": "rsync://mirror/x", "dest": "/b"}));
        assert!(build_command(&p, &cx(), "h", "R").is_err());
        let e = crate::module::parse_params::<SynchronizeParams>(
            "synchronize",
            &json!({"src": "/a", "dest": "/b", "delet": true}),
        )
        .expect_err("unknown");
        assert!(matches!(e, ParamError::Unknown { ref field, .. } if field == "delet"));
    }

    #[test]
    fn itemized_output_decides_changed() {
        let out = "<<CHANGED>>>f+++++++++ a.txt\n<<CHANGED>>cd+++++++++ sub/\n";
        let i = read_itemized(out, false);
        assert!(i.changed);
        assert_eq!(i.lines, [">f+++++++++ a.txt", "cd+++++++++ sub/"]);
        assert_eq!(i.msg, ">f+++++++++ a.txt\ncd+++++++++ sub/\n");
        let none = read_itemized("", false);
        assert!(!none.changed && none.lines.is_empty());
        // With link_dest, -vv lists unchanged files too; a `.` item there
        // is what Ansible reads as "no change".
        assert!(!read_itemized("<<CHANGED>>.f        a.txt\n", true).changed);
        assert!(read_itemized("<<CHANGED>>>f+++++++++ a.txt\n", true).changed);
    }

    #[test]
    fn controller_paths_are_found_as_ansible_finds_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = dir.path().join("files");
        std::fs::create_dir_all(files.join("site")).expect("mkdir");
        let search = vec![
            files.display().to_string(),
            dir.path().display().to_string(),
        ];
        assert_eq!(
            controller_path("site/", &search),
            format!("{}/site/", files.display())
        );
        assert_eq!(
            controller_path("out", &search),
            format!("{}/out", dir.path().display())
        );
        assert_eq!(controller_path("/abs/x", &search), "/abs/x");
        assert_eq!(remote_spec("::1", Some("u"), "/x"), "[u@::1]:/x");
        assert_eq!(remote_spec("h", None, "other:/x"), "other:/x");
        assert_eq!(remote_spec("h", Some("u"), "other:/x"), "u@other:/x");
    }

    #[test]
    fn delegation_and_a_missing_context_are_refused() {
        let mut host = LocalHost::new("local");
        let p = json!({"src": "/a", "dest": "/b"});
        let e = DynModule::plan(&Synchronize, &p, &mut host).expect_err("no context");
        assert!(e.to_string().contains("controller context"), "{e}");
        let mut c = cx();
        c.delegated = true;
        let p = json!({"src": "/a", "dest": "/b", "_controller": c});
        let e = DynModule::plan(&Synchronize, &p, &mut host).expect_err("delegated");
        assert!(e.to_string().contains("delegate_to"), "{e}");
    }

    /// A relay made of `sh` and `cat` (the real one is the herd binary):
    /// announce the command after the host argument, then copy both ways.
    /// No single quotes: rsync splits `--rsh` honouring quotes but not the
    /// shell's `'\''`. A background job's stdin is /dev/null, hence fd 3;
    /// the relay ends when the host's side does, as ssh does.
    fn shell_relay() -> Vec<String> {
        let script = r#"fd=$1; shift; shift; cmd="$*"; exec 3<&0; \
            { printf "%s\n%s" "${#cmd}" "$cmd"; exec cat <&3; } >&$fd & \
            cat <&$fd; kill $! 2>/dev/null; true"#;
        vec![
            "/bin/sh".into(),
            "-c".into(),
            script.replace("\\\n            ", " "),
            "relay".into(),
        ]
    }

    fn rsync_available() -> bool {
        Command::new("rsync")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn pushes_a_tree_through_the_host_then_has_nothing_to_do() {
        if !rsync_available() {
            eprintln!("rsync is not installed; skipped");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).expect("mkdir");
        std::fs::write(src.join("a"), "alpha\n").expect("write");
        std::fs::write(src.join("sub/b"), "beta\n").expect("write");
        std::os::unix::fs::symlink("a", src.join("link")).expect("symlink");
        let dest = dir.path().join("dest");
        let mut c = ControllerContext {
            relay: shell_relay(),
            check_mode: true,
            ..ControllerContext::default()
        };
        let mut host = LocalHost::new("local");
        let p = |c: &ControllerContext| {
            json!({"src": format!("{}/", src.display()), "dest": dest.display().to_string(),
                   "_controller": c})
        };
        // Check mode: rsync's dry run says what would change, nothing is written.
        let plan = DynModule::plan(&Synchronize, &p(&c), &mut host).expect("check plan");
        assert!(!plan.is_empty());
        assert!(
            plan.changes.iter().any(|l| l.contains("sub/b")),
            "{:?}",
            plan.changes
        );
        assert!(plan.result["cmd"]
            .as_str()
            .unwrap_or("")
            .contains("--dry-run"));
        assert!(!dest.exists(), "check mode wrote");
        // A real run copies the tree and reports the change.
        c.check_mode = false;
        let plan = DynModule::plan(&Synchronize, &p(&c), &mut host).expect("plan");
        let out = DynModule::apply(&Synchronize, &p(&c), plan, &mut host).expect("apply");
        assert!(out.changed);
        assert_eq!(out.result["rc"], 0);
        assert_eq!(
            std::fs::read_to_string(dest.join("sub/b")).expect("copied"),
            "beta\n"
        );
        assert_eq!(
            std::fs::read_link(dest.join("link")).expect("link"),
            std::path::Path::new("a")
        );
        // Then nothing to do, in check mode and out of it.
        c.check_mode = true;
        let again = DynModule::plan(&Synchronize, &p(&c), &mut host).expect("plan again");
        assert!(again.is_empty(), "{:?}", again.changes);
        assert_eq!(again.result["changed"], false);
        c.check_mode = false;
        let plan = DynModule::plan(&Synchronize, &p(&c), &mut host).expect("plan");
        let out = DynModule::apply(&Synchronize, &p(&c), plan, &mut host).expect("apply");
        assert!(!out.changed, "{:?}", out.result);
        assert_eq!(out.result["stdout_lines"], json!([]));
    }

    #[test]
    fn a_failing_rsync_fails_the_task_with_its_message() {
        if !rsync_available() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let c = ControllerContext {
            relay: shell_relay(),
            ..ControllerContext::default()
        };
        let p = json!({"src": dir.path().join("missing").display().to_string(),
                       "dest": dir.path().join("d").display().to_string(), "_controller": c});
        let mut host = LocalHost::new("local");
        let plan = DynModule::plan(&Synchronize, &p, &mut host).expect("plan");
        match DynModule::apply(&Synchronize, &p, plan, &mut host) {
            Err(ModuleError::Failed { msg, result }) => {
                assert!(msg.contains("missing"), "{msg}");
                assert_ne!(result["rc"], 0);
                assert!(result["cmd"].as_str().unwrap_or("").starts_with("rsync "));
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
