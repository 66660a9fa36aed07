//! `user`: make sure a local user exists with the given attributes, or not.
//!
//! The plan reads `getent passwd NAME`, `getent shadow NAME` and the whole
//! `getent group` listing in one round trip, and decides which `useradd`,
//! `usermod` or `userdel` arguments are needed; apply runs that one command
//! and reads the entry back for the result (`name`, `uid`, `group`, `home`,
//! `shell`, `comment`, `state`, as Ansible registers them).
//!
//! `password` is an already-hashed string compared with the shadow entry;
//! it never appears in changes, messages or results. `generate_ssh_key`
//! runs `ssh-keygen` when the key file is missing (an existing key is left
//! alone, as in Ansible). `expires`, `password_lock` and the password
//! ageing fields (`password_expire_max`/`_min`/`_warn`, set with `chage`
//! after the `useradd`/`usermod`) are compared with the shadow entry as
//! Ansible compares them. Not supported (an unknown parameter):
//! `login_class`, `seuser`, `password_expire_account_disable`.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::account::{de_opt_list, run_argv, tag_lines, tagged_all, Group, Passwd};
use crate::params::{
    de_bool, de_opt_bool, de_opt_i64, de_opt_signed_f64, de_opt_string, de_opt_u64, yes,
};
use crate::probe::tagged;
use crate::shell_quote::{join, quote};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum UserState {
    #[default]
    /// It should be there.
    Present,
    /// It should not be there.
    Absent,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
/// When `user` sets the password.
pub enum UpdatePassword {
    #[default]
    /// Set the password whenever it differs.
    Always,
    /// Only for a new user.
    OnCreate,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `user`: what `herd doc` shows, and what the parser takes.
pub struct UserParams {
    /// The user's login name.
    #[serde(alias = "user")]
    pub name: String,
    /// `present`: the user exists with these attributes; `absent`: it does not.
    #[serde(default)]
    pub state: UserState,
    /// The user's uid.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub uid: Option<u64>,
    /// The primary group (name or gid); it must exist.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub group: Option<String>,
    /// Supplementary groups, a list or a comma-separated string; they must exist. Without
    /// `append`, the user is removed from groups not listed.
    #[serde(default, deserialize_with = "de_opt_list")]
    pub groups: Option<Vec<String>>,
    /// Add the user to `groups` without removing it from others.
    #[serde(default, deserialize_with = "de_bool")]
    pub append: bool,
    /// The login shell.
    pub shell: Option<String>,
    /// The home directory.
    pub home: Option<String>,
    /// Create the home directory (from `skeleton`) when the user is created.
    #[serde(default = "yes", alias = "createhome", deserialize_with = "de_bool")]
    pub create_home: bool,
    /// With a new `home`, move the old home directory's content there.
    #[serde(default, deserialize_with = "de_bool")]
    pub move_home: bool,
    /// Create a system account (a uid from the system range, no aging). Has no effect on an
    /// existing user.
    #[serde(default, deserialize_with = "de_bool")]
    pub system: bool,
    /// Allow a `uid` another user has.
    #[serde(default, deserialize_with = "de_bool")]
    pub non_unique: bool,
    /// The password hash for the shadow file (already hashed, e.g. with
    /// `password_hash('sha512')`); never shown.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub password: Option<String>,
    /// `always`: set `password` when it differs; `on_create`: only for a new user.
    #[serde(default)]
    pub update_password: UpdatePassword,
    /// The GECOS field (full name).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub comment: Option<String>,
    /// With `state: absent`, remove the home directory and mail spool too.
    #[serde(default, deserialize_with = "de_bool")]
    pub remove: bool,
    /// With `state: absent`, remove the user even while it is logged in.
    #[serde(default, deserialize_with = "de_bool")]
    pub force: bool,
    /// The skeleton directory for a new home.
    #[serde(alias = "skel")]
    pub skeleton: Option<String>,
    /// Accepted; changes nothing (the shadow tools already edit the local files).
    #[serde(default, deserialize_with = "de_bool")]
    pub local: bool,
    /// Generate an SSH key pair for the user when `ssh_key_file` does not exist (an existing
    /// key is never replaced).
    #[serde(default, deserialize_with = "de_bool")]
    pub generate_ssh_key: bool,
    /// The key type for `ssh-keygen -t`.
    #[serde(default = "rsa")]
    pub ssh_key_type: String,
    /// The key size for `ssh-keygen -b` (default: ssh-keygen's).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub ssh_key_bits: Option<u64>,
    /// The private key's path; relative paths are under the user's home.
    #[serde(default = "id_rsa")]
    pub ssh_key_file: String,
    /// The key's comment (default `ansible-generated on HOSTNAME`).
    pub ssh_key_comment: Option<String>,
    /// The key's passphrase (passed to ssh-keygen's `-N` on its command line).
    pub ssh_key_passphrase: Option<String>,
    /// When the account expires, in seconds since the epoch (compared by
    /// day, UTC); a negative number removes the expiry.
    #[serde(default, deserialize_with = "de_opt_signed_f64")]
    pub expires: Option<f64>,
    /// Lock (`usermod -L`) or unlock (`usermod -U`) the password.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub password_lock: Option<bool>,
    /// The most days a password may be used (`chage -M`).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub password_expire_max: Option<i64>,
    /// The fewest days between password changes (`chage -m`).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub password_expire_min: Option<i64>,
    /// Days of warning before the password expires (`chage -W`).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub password_expire_warn: Option<i64>,
}

fn rsa() -> String {
    "rsa".into()
}

fn id_rsa() -> String {
    ".ssh/id_rsa".into()
}

/// The `user` module.
pub struct User;

/// The argv of the one command to run, and a change line per difference.
type Command = (Vec<String>, Vec<String>);

/// The fields of a shadow entry the module compares; an empty number
/// field reads as -1, as Python's `spwd` gives it to Ansible.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shadow {
    password: String,
    min: i64,
    max: i64,
    warn: i64,
    expire: i64,
}

impl Shadow {
    /// `name:password:lastchg:min:max:warn:inactive:expire:reserved`.
    fn parse(line: &str) -> Option<Shadow> {
        let f: Vec<&str> = line.split(':').collect();
        let num = |i: usize| {
            f.get(i)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(-1)
        };
        Some(Shadow {
            password: f.get(1)?.to_string(),
            min: num(3),
            max: num(4),
            warn: num(5),
            expire: num(7),
        })
    }
}

/// What the probe found.
struct Found {
    user: Option<Passwd>,
    shadow: Option<Shadow>,
    groups: Vec<Group>,
    /// With `generate_ssh_key`: the key's path, public key and fingerprint
    /// when it exists.
    ssh_key: Option<(String, String, String)>,
    /// The existing user's home directory does not exist.
    home_missing: bool,
}

/// Shell lines that set `k` to the SSH key's path: a relative
/// `ssh_key_file` is under the user's home (the one it will get, for a
/// user not created yet).
fn key_path_script(p: &UserParams) -> String {
    if p.ssh_key_file.starts_with('/') {
        return format!("k={}\n", quote(&p.ssh_key_file));
    }
    let home = p
        .home
        .clone()
        .unwrap_or_else(|| format!("/home/{}", p.name));
    format!(
        "h=$(getent passwd -- {} | cut -d: -f6); [ -n \"$h\" ] || h={}\nk=\"$h\"/{}\n",
        quote(&p.name),
        quote(&home),
        quote(&p.ssh_key_file)
    )
}

/// Print the key's path, public key and fingerprint, tagged.
const KEY_FACTS: &str = "echo \"SSHFILE $k\"; echo \"SSHPUB $(cat -- \"$k.pub\" 2>/dev/null)\"; \
     echo \"SSHFP $(ssh-keygen -l -f \"$k.pub\" 2>/dev/null)\"\n";

fn key_facts(text: &str) -> Option<(String, String, String)> {
    let get = |t: &str| tagged(text, t).unwrap_or_default().trim().to_string();
    tagged(text, "SSHFILE").map(|_| (get("SSHFILE"), get("SSHPUB"), get("SSHFP")))
}

fn probe(host: &mut dyn Host, p: &UserParams) -> Result<Found, ModuleError> {
    let name = p.name.as_str();
    let n = quote(name);
    let mut script = format!(
        "{}{}{}",
        tag_lines("P", &format!("getent passwd -- {n}")),
        tag_lines("S", &format!("getent shadow -- {n}")),
        tag_lines("G", "getent group"),
    );
    // The home the user has now: a missing one is made again (below).
    script.push_str(&format!(
        "h=$(getent passwd -- {n} | cut -d: -f6)\n\
         if [ -n \"$h\" ] && [ ! -e \"$h\" ]; then echo NOHOME yes; fi\n"
    ));
    if p.generate_ssh_key {
        script.push_str(&key_path_script(p));
        script.push_str(&format!("if [ -e \"$k\" ]; then {KEY_FACTS}fi\n"));
    }
    let out = host.run(&script, None)?;
    let text = out.stdout_str();
    let found = Found {
        user: tagged_all(&text, "P")
            .filter_map(Passwd::parse)
            .find(|p| p.name == name),
        shadow: tagged(&text, "S").and_then(Shadow::parse),
        groups: tagged_all(&text, "G").filter_map(Group::parse).collect(),
        ssh_key: key_facts(&text),
        home_missing: tagged(&text, "NOHOME").is_some(),
    };
    Ok(found)
}

fn no_group(g: &str) -> ModuleError {
    ModuleError::failed(format!("Group {g} does not exist"))
}

impl User {
    /// The argv that brings the user to `p`, or `None` when nothing differs;
    /// with one change line per difference.
    fn command(p: &UserParams, f: &Found) -> Result<Option<Command>, ModuleError> {
        let find = |g: &str| f.groups.iter().find(|x| x.is(g));
        let wanted_group = match &p.group {
            Some(g) => Some(find(g).ok_or_else(|| no_group(g))?),
            None => None,
        };
        if let Some(gs) = &p.groups {
            for g in gs {
                find(g).ok_or_else(|| no_group(g))?;
            }
        }
        Ok(match (p.state, &f.user) {
            (UserState::Absent, None) => None,
            (UserState::Absent, Some(_)) => Some(userdel(p)),
            (UserState::Present, None) => Some(useradd(p, f)),
            (UserState::Present, Some(u)) => usermod(p, f, u, wanted_group),
        })
    }

    /// Make the SSH key as Ansible does: the directory 0700 and the files
    /// the user's; returns the key's path, public key and fingerprint.
    fn keygen(
        p: &UserParams,
        host: &mut dyn Host,
    ) -> Result<(String, String, String), ModuleError> {
        let owner = quote(&format!("{}:", p.name));
        let mut keygen = vec![
            "ssh-keygen".to_string(),
            "-q".into(),
            "-t".into(),
            p.ssh_key_type.clone(),
        ];
        if let Some(b) = p.ssh_key_bits {
            keygen.extend(["-b".into(), b.to_string()]);
        }
        keygen.extend([
            "-N".into(),
            p.ssh_key_passphrase.clone().unwrap_or_default(),
        ]);
        let comment = match &p.ssh_key_comment {
            Some(c) => quote(c),
            None => "\"ansible-generated on $(hostname)\"".into(),
        };
        let script = format!(
            "set -e\n{}d=$(dirname -- \"$k\")\n\
             if [ ! -d \"$d\" ]; then mkdir -p -- \"$d\"; chmod 0700 \"$d\"; chown -- {owner} \"$d\"; fi\n\
             {} -C {comment} -f \"$k\" </dev/null\nchown -- {owner} \"$k\" \"$k.pub\"\n{KEY_FACTS}",
            key_path_script(p),
            join(&keygen),
        );
        let out = host.run(&script, None)?;
        if !out.success() {
            return Err(ModuleError::failed(format!(
                "Failed to generate the SSH key (rc={}): {}",
                out.rc,
                out.stderr_str().trim_end()
            )));
        }
        key_facts(&out.stdout_str())
            .ok_or_else(|| ModuleError::failed("ssh-keygen printed nothing to read the key from"))
    }

    fn key_result(m: &mut Map<String, Value>, key: Option<&(String, String, String)>) {
        if let Some((file, public, fp)) = key {
            m.insert("ssh_key_file".into(), json!(file));
            m.insert("ssh_public_key".into(), json!(public));
            m.insert("ssh_fingerprint".into(), json!(fp));
        }
    }

    fn result(p: &UserParams, user: Option<&Passwd>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), json!(p.name));
        match p.state {
            UserState::Absent => {
                m.insert("state".into(), json!("absent"));
                m.insert("remove".into(), json!(p.remove));
                m.insert("force".into(), json!(p.force));
            }
            UserState::Present => {
                m.insert("state".into(), json!("present"));
                m.insert("system".into(), json!(p.system));
                m.insert("append".into(), json!(p.append));
                m.insert("move_home".into(), json!(p.move_home));
                if let Some(gs) = &p.groups {
                    m.insert("groups".into(), json!(gs.join(",")));
                }
                if p.password.is_some() {
                    m.insert("password".into(), json!("NOT_LOGGING_PASSWORD"));
                }
                if let Some(u) = user {
                    m.insert("uid".into(), json!(u.uid));
                    m.insert("group".into(), json!(u.gid));
                    m.insert("home".into(), json!(u.home));
                    m.insert("shell".into(), json!(u.shell));
                    m.insert("comment".into(), json!(u.gecos));
                }
            }
        }
        m
    }
}

/// One argv word.
fn arg(x: &str) -> String {
    x.to_string()
}

/// `userdel` for a user that should be absent.
fn userdel(p: &UserParams) -> Command {
    let mut argv = vec![arg("userdel")];
    if p.force {
        argv.push(arg("-f"));
    }
    if p.remove {
        argv.push(arg("-r"));
    }
    argv.extend([arg("--"), p.name.clone()]);
    (argv, vec![format!("remove user {}", p.name)])
}

/// `useradd` for a missing user.
fn useradd(p: &UserParams, f: &Found) -> Command {
    let find = |g: &str| f.groups.iter().find(|x| x.is(g));
    let mut argv = vec![arg("useradd")];
    if let Some(uid) = p.uid {
        argv.extend([arg("-u"), uid.to_string()]);
        if p.non_unique {
            argv.push(arg("-o"));
        }
    }
    match &p.group {
        Some(g) => argv.extend([arg("-g"), g.clone()]),
        // useradd would try to create a group of the user's name
        // and fail: Ansible passes -N then.
        None if find(&p.name).is_some() => argv.push(arg("-N")),
        None => {}
    }
    if let Some(gs) = p.groups.as_ref().filter(|g| !g.is_empty()) {
        argv.extend([arg("-G"), gs.join(",")]);
    }
    if let Some(c) = &p.comment {
        argv.extend([arg("-c"), c.clone()]);
    }
    if let Some(h) = &p.home {
        argv.extend([arg("-d"), h.clone()]);
    }
    if let Some(sh) = &p.shell {
        argv.extend([arg("-s"), sh.clone()]);
    }
    if let Some(e) = p.expires {
        argv.extend([arg("-e"), expiry_arg(e)]);
    }
    if let Some(pw) = &p.password {
        argv.extend([arg("-p"), locked_hash(p, pw)]);
    }
    if p.create_home {
        argv.push(arg("-m"));
        if let Some(k) = &p.skeleton {
            argv.extend([arg("-k"), k.clone()]);
        }
    } else {
        argv.push(arg("-M"));
    }
    if p.system {
        argv.push(arg("-r"));
    }
    argv.extend([arg("--"), p.name.clone()]);
    (argv, vec![format!("create user {}", p.name)])
}

/// Make `home` for the existing user as Ansible does: a copy of the
/// skeleton (`/etc/skel` unless `skeleton` says), else an empty directory;
/// mode `HOME_MODE` from /etc/login.defs, else 0777 less its `UMASK`, else
/// 0755; everything in it owned by the user and its primary group. Does
/// nothing when `home` exists by then (a `usermod -d` of the same task
/// may not have made it).
fn make_home(p: &UserParams, home: &str, host: &mut dyn Host) -> Result<(), ModuleError> {
    let skel = quote(p.skeleton.as_deref().unwrap_or("/etc/skel"));
    let h = quote(home);
    let owner = quote(&p.name);
    let script = format!(
        "[ -e {h} ] && exit 0\n\
         if [ -d {skel} ]; then mkdir -p \"$(dirname {h})\" && cp -a {skel} {h}; else mkdir -p {h}; fi\n\
         m=$(sed -n 's/^HOME_MODE[[:space:]]*\\([0-7][0-7]*\\)[[:space:]]*$/\\1/p' /etc/login.defs 2>/dev/null | head -n 1)\n\
         if [ -z \"$m\" ]; then\n\
         u=$(sed -n 's/^UMASK[[:space:]]*\\([0-7][0-7]*\\)[[:space:]]*$/\\1/p' /etc/login.defs 2>/dev/null | tail -n 1)\n\
         if [ -n \"$u\" ]; then m=$(printf '%o' $(( 0777 & ~0$u ))); else m=755; fi\n\
         fi\n\
         chmod \"$m\" {h}\n\
         g=$(id -g -- {owner})\n\
         chown -R -- {owner}:\"$g\" {h}\n"
    );
    crate::textfile::run_checked(host, "create the home directory", &script)
}

/// `usermod` for what differs on an existing user, `None` when nothing does.
fn usermod(p: &UserParams, f: &Found, u: &Passwd, wanted_group: Option<&Group>) -> Option<Command> {
    let mut changes = Vec::new();
    let mut argv = vec![arg("usermod")];
    if let Some(uid) = p.uid.filter(|w| *w != u64::from(u.uid)) {
        argv.extend([arg("-u"), uid.to_string()]);
        if p.non_unique {
            argv.push(arg("-o"));
        }
        changes.push(format!("uid {} -> {uid}", u.uid));
    }
    if let Some(g) = wanted_group.filter(|g| g.gid != u.gid) {
        argv.extend([arg("-g"), g.name.clone()]);
        changes.push(format!("group {} -> {}", u.gid, g.name));
    }
    if let Some(gs) = &p.groups {
        if let Some((args, change)) = supplementary_groups(p, f, u, gs) {
            argv.extend(args);
            changes.push(change);
        }
    }
    if let Some(c) = p.comment.as_ref().filter(|c| **c != u.gecos) {
        argv.extend([arg("-c"), c.clone()]);
        changes.push(format!("comment {:?} -> {c:?}", u.gecos));
    }
    if let Some(h) = p.home.as_ref().filter(|h| **h != u.home) {
        argv.extend([arg("-d"), h.clone()]);
        if p.move_home {
            argv.push(arg("-m"));
        }
        changes.push(format!("home {} -> {h}", u.home));
    }
    if let Some(sh) = p.shell.as_ref().filter(|sh| **sh != u.shell) {
        argv.extend([arg("-s"), sh.clone()]);
        changes.push(format!("shell {} -> {sh}", u.shell));
    }
    // Without a readable shadow entry (not root) there is nothing to
    // compare with: expiry, lock and password are left alone.
    if let (Some(e), Some(sh)) = (p.expires, &f.shadow) {
        let differs = if e < 0.0 {
            sh.expire >= 0
        } else {
            sh.expire < 0 || sh.expire != expiry_day(e)
        };
        if differs {
            argv.extend([arg("-e"), expiry_arg(e)]);
            changes.push(format!(
                "expires {} -> {}",
                day_text(sh.expire),
                expiry_text(e)
            ));
        }
    }
    let locked = f.shadow.as_ref().map(|sh| sh.password.starts_with('!'));
    match (p.password_lock, locked) {
        (Some(true), Some(false)) => {
            argv.push(arg("-L"));
            changes.push("lock password".into());
        }
        (Some(false), Some(true)) => {
            // usermod refuses to unlock a user without a password; the
            // task still reports a change, as Ansible's does.
            argv.push(arg("-U"));
            changes.push("unlock password".into());
        }
        _ => {}
    }
    let pw_differs = match (&p.password, &f.shadow) {
        // A locked (`!`-prefixed) hash is the same password.
        (Some(want), Some(have)) => {
            want.trim_start_matches('!') != have.password.trim_start_matches('!')
        }
        _ => false,
    };
    if pw_differs && p.update_password == UpdatePassword::Always {
        if let Some(pw) = &p.password {
            // -p cannot be combined with -L/-U: the hash carries the lock.
            argv.retain(|a| a != "-L" && a != "-U");
            argv.extend([arg("-p"), locked_hash(p, pw)]);
            changes.push("password changed".into());
        }
    }
    if changes.is_empty() {
        return None;
    }
    argv.extend([arg("--"), p.name.clone()]);
    Some((argv, changes))
}

/// The day (since the epoch, UTC) `expires` falls on.
fn expiry_day(e: f64) -> i64 {
    (e.floor() as i64).div_euclid(86_400)
}

/// `expires` as `useradd`/`usermod -e` take it: a date, or empty to clear.
fn expiry_arg(e: f64) -> String {
    if e < 0.0 {
        String::new()
    } else {
        crate::clock::date_of_day(expiry_day(e))
    }
}

fn expiry_text(e: f64) -> String {
    if e < 0.0 {
        "never".into()
    } else {
        expiry_arg(e)
    }
}

fn day_text(day: i64) -> String {
    if day < 0 {
        "never".into()
    } else {
        crate::clock::date_of_day(day)
    }
}

/// The hash for `-p`: `!`-prefixed with `password_lock`, as Ansible sets a
/// locked password in one command.
fn locked_hash(p: &UserParams, pw: &str) -> String {
    if p.password_lock == Some(true) {
        format!("!{pw}")
    } else {
        pw.to_string()
    }
}

/// `chage` for the ageing fields that differ from the shadow entry (all
/// given ones for a user not created yet), with the change lines.
fn chage(p: &UserParams, shadow: Option<&Shadow>) -> Option<Command> {
    let mut argv = vec![arg("chage")];
    let mut changes = Vec::new();
    let fields = [
        (
            "-m",
            "password_expire_min",
            p.password_expire_min,
            shadow.map(|s| s.min),
        ),
        (
            "-M",
            "password_expire_max",
            p.password_expire_max,
            shadow.map(|s| s.max),
        ),
        (
            "-W",
            "password_expire_warn",
            p.password_expire_warn,
            shadow.map(|s| s.warn),
        ),
    ];
    for (flag, name, want, have) in fields {
        let Some(want) = want else { continue };
        if have == Some(want) {
            continue;
        }
        argv.extend([arg(flag), want.to_string()]);
        changes.push(match have {
            Some(h) => format!("{name} {h} -> {want}"),
            None => format!("{name} {want}"),
        });
    }
    if changes.is_empty() {
        return None;
    }
    argv.extend([arg("--"), p.name.clone()]);
    Some((argv, changes))
}

/// `-G` (and `-a`) when the user's supplementary groups differ from `gs`,
/// with the change line.
fn supplementary_groups(
    p: &UserParams,
    f: &Found,
    u: &Passwd,
    gs: &[String],
) -> Option<(Vec<String>, String)> {
    let find = |g: &str| f.groups.iter().find(|x| x.is(g));
    // As Ansible: every group listing the user, the primary
    // one included, against the names asked for.
    let current: BTreeSet<&str> = f
        .groups
        .iter()
        .filter(|g| g.members.contains(&u.name))
        .map(|g| g.name.as_str())
        .collect();
    let wanted: BTreeSet<&str> = gs
        .iter()
        .filter_map(|g| find(g))
        .map(|g| g.name.as_str())
        .collect();
    let differs = if wanted.is_empty() {
        !current.is_empty() && !p.append
    } else if p.append {
        !wanted.is_subset(&current)
    } else {
        wanted != current
    };
    if !differs {
        return None;
    }
    let list: Vec<&str> = wanted.iter().copied().collect();
    let mut argv = Vec::new();
    if p.append {
        argv.push(arg("-a"));
    }
    argv.extend([arg("-G"), list.join(",")]);
    let cur: Vec<&str> = current.iter().copied().collect();
    let change = format!("groups {} -> {}", cur.join(","), list.join(","));
    Some((argv, change))
}

impl Module for User {
    const NAME: &'static str = "user";
    const DOC_SHORT: &'static str = "Manage a local user account.";
    const DOC_LONG: &'static str = r##"The plan reads the passwd, shadow and group entries in one round trip and runs one `useradd`, `usermod` or `userdel` when something differs."##;
    const DOC_EXAMPLE: &'static str = r##"- name: The deploy user
  user:
    name: deploy
    groups: [docker, adm]
    append: true
    shell: /bin/bash
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("name", "The user."),
        ("uid", "Its uid."),
        ("group", "Its primary gid."),
        ("home", "Its home."),
        ("shell", "Its shell."),
        ("state", "`present` or `absent`."),
    ];
    type Params = UserParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        if p.name.is_empty() || p.name.contains([':', '\n', ',']) {
            return Err(ModuleError::Params(ParamError::Invalid {
                module: Self::NAME,
                path: "name".into(),
                reason: "not a valid user name".into(),
            }));
        }
        let found = probe(host, p)?;
        let mut plan = Plan {
            result: Self::result(p, found.user.as_ref()),
            ..Plan::default()
        };
        Self::key_result(&mut plan.result, found.ssh_key.as_ref());
        let mut argv = None;
        if let Some((a, changes)) = Self::command(p, &found)? {
            plan.changes = changes;
            argv = Some(a);
        }
        // As Ansible: the ageing fields are set after the user exists, and
        // compared with its shadow entry (unreadable: nothing to compare).
        let mut chage_argv = None;
        if p.state == UserState::Present && (found.user.is_none() || found.shadow.is_some()) {
            let shadow = found.shadow.as_ref().filter(|_| found.user.is_some());
            if let Some((a, changes)) = chage(p, shadow) {
                plan.changes.extend(changes);
                chage_argv = Some(a);
            }
        }
        // As Ansible: an existing user whose home directory is missing gets
        // one (from the skeleton) whenever `create_home` is on, the default,
        // even on a task that changes nothing else.
        let mkhome = match &found.user {
            Some(u)
                if p.state == UserState::Present
                    && p.create_home
                    && found.home_missing
                    && p.home.as_ref().is_none_or(|h| *h == u.home) =>
            {
                plan.changes
                    .push(format!("create home directory {}", u.home));
                Some(u.home.clone())
            }
            _ => None,
        };
        // As Ansible: an existing key is left alone.
        let keygen = p.generate_ssh_key && p.state == UserState::Present && found.ssh_key.is_none();
        if keygen {
            plan.changes
                .push(format!("generate SSH key {}", p.ssh_key_file));
        }
        plan.state = json!({"argv": argv, "keygen": keygen, "mkhome": mkhome, "chage": chage_argv});
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let argv: Option<Vec<String>> = serde_json::from_value(plan.state["argv"].clone())
            .map_err(|_| ModuleError::failed("user: apply called without a plan"))?;
        if let Some(argv) = argv {
            run_argv(host, &argv).map_err(|e| match e {
                // The command line may hold the password hash: say only
                // which command failed and why.
                ModuleError::Failed { msg, .. } => ModuleError::failed(msg),
                other => other,
            })?;
        }
        if let Some(home) = plan.state["mkhome"].as_str() {
            make_home(p, home, host)?;
        }
        if let Ok(Some(argv)) =
            serde_json::from_value::<Option<Vec<String>>>(plan.state["chage"].clone())
        {
            run_argv(host, &argv)?;
        }
        let mut key = None;
        if plan.state["keygen"].as_bool().unwrap_or(false) {
            key = Some(Self::keygen(p, host)?);
        }
        let found = if p.state == UserState::Present {
            Some(probe(host, p)?)
        } else {
            None
        };
        let mut result = Self::result(p, found.as_ref().and_then(|f| f.user.as_ref()));
        Self::key_result(
            &mut result,
            key.as_ref()
                .or(found.as_ref().and_then(|f| f.ssh_key.as_ref())),
        );
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(user: &str, shadow: &str, groups: &[&str]) -> Found {
        Found {
            user: Passwd::parse(user),
            shadow: Shadow::parse(&format!("{}:{shadow}:19000:0:99999:7:::", "u")),
            groups: groups.iter().filter_map(|g| Group::parse(g)).collect(),
            ssh_key: None,
            home_missing: false,
        }
    }

    fn params(v: Value) -> UserParams {
        crate::module::parse_params(User::NAME, &v).expect("params")
    }

    const GROUPS: &[&str] = &["bob:x:1001:", "adm:x:4:bob", "sudo:x:27:", "users:x:100:"];

    #[test]
    fn creates_with_ansible_arguments() {
        let f = Found {
            user: None,
            shadow: None,
            groups: GROUPS.iter().filter_map(|g| Group::parse(g)).collect(),
            ssh_key: None,
            home_missing: false,
        };
        let p = params(
            json!({"name": "alice", "uid": "1500", "groups": "adm, sudo",
            "shell": "/bin/bash", "password": "$6$h", "system": "no", "comment": "A"}),
        );
        let (argv, changes) = User::command(&p, &f).expect("ok").expect("some");
        assert_eq!(
            argv,
            [
                "useradd",
                "-u",
                "1500",
                "-G",
                "adm,sudo",
                "-c",
                "A",
                "-s",
                "/bin/bash",
                "-p",
                "$6$h",
                "-m",
                "--",
                "alice"
            ]
        );
        assert_eq!(changes, ["create user alice"]);
        // A group named like the user already exists: -N, as Ansible does.
        let p = params(json!({"name": "bob", "create_home": false}));
        let (argv, _) = User::command(&p, &f).expect("ok").expect("some");
        assert_eq!(argv, ["useradd", "-N", "-M", "--", "bob"]);
        let p = params(json!({"name": "x", "groups": ["nope"]}));
        assert!(User::command(&p, &f).is_err());
    }

    #[test]
    fn modifies_only_what_differs() {
        let f = found("bob:x:1001:1001::/home/bob:/bin/sh", "$6$old", GROUPS);
        let same = params(json!({"name": "bob", "shell": "/bin/sh", "groups": "adm",
            "password": "$6$old", "uid": 1001}));
        assert!(User::command(&same, &f).expect("ok").is_none());
        let p = params(
            json!({"name": "bob", "shell": "/bin/bash", "groups": ["sudo"],
            "append": true, "password": "$6$new"}),
        );
        let (argv, changes) = User::command(&p, &f).expect("ok").expect("some");
        assert_eq!(
            argv,
            [
                "usermod",
                "-a",
                "-G",
                "sudo",
                "-s",
                "/bin/bash",
                "-p",
                "$6$new",
                "--",
                "bob"
            ]
        );
        assert!(changes.iter().all(|c| !c.contains("$6$")), "{changes:?}");
        // on_create leaves an existing password alone; appending a group
        // the user has is nothing; groups without append removes the rest.
        let p = params(json!({"name": "bob", "password": "$6$new",
            "update_password": "on_create", "groups": "adm", "append": "yes"}));
        assert!(User::command(&p, &f).expect("ok").is_none());
        let p = params(json!({"name": "bob", "groups": ""}));
        let (argv, _) = User::command(&p, &f).expect("ok").expect("some");
        assert_eq!(argv, ["usermod", "-G", "", "--", "bob"]);
        let p = params(json!({"name": "bob", "state": "absent", "remove": true}));
        let (argv, _) = User::command(&p, &f).expect("ok").expect("some");
        assert_eq!(argv, ["userdel", "-r", "--", "bob"]);
    }

    #[test]
    fn ssh_key_path_is_under_the_home_it_will_have() {
        let p = params(json!({"name": "bob", "generate_ssh_key": true}));
        let s = key_path_script(&p);
        assert!(
            s.contains("h=/home/bob") && s.ends_with("k=\"$h\"/.ssh/id_rsa\n"),
            "{s}"
        );
        let p = params(json!({"name": "bob", "ssh_key_file": "/k/id", "home": "/srv/b"}));
        assert_eq!(key_path_script(&p), "k=/k/id\n");
        let facts =
            key_facts("SSHFILE /k/id\nSSHPUB ssh-ed25519 AAAA c\nSSHFP 256 SHA256:x c (ED25519)\n");
        assert_eq!(facts.map(|f| f.1), Some("ssh-ed25519 AAAA c".to_string()));
    }

    #[test]
    fn a_missing_home_is_made_again_as_ansible_does() {
        use crate::testing::{FakeHost, Match};
        // Made with `createhome=no`; a later task with the default
        // `create_home` gives it a home from the skeleton.
        let probe = "P tset:x:1002:100:NyetUser:/home/tset:/sbin/nologin\n\
                     G users:x:100:\nNOHOME yes\n";
        let mut h = FakeHost::new()
            .answer(Match::contains("getent passwd"), 0, probe, "")
            .answer(Match::Any, 0, "", "");
        let m: &dyn crate::DynModule = &User;
        let params = json!({"name": "tset", "comment": "NyetUser"});
        let plan = m.plan(&params, &mut h).expect("plan");
        assert_eq!(plan.changes, ["create home directory /home/tset"]);
        let out = m.apply(&params, plan, &mut h).expect("apply");
        assert!(out.changed);
        let made = h
            .scripts
            .iter()
            .find(|s| s.contains("cp -a /etc/skel /home/tset"))
            .expect("the skeleton is copied");
        assert!(
            made.contains("chown -R -- tset:\"$g\" /home/tset"),
            "{made}"
        );
        assert!(made.contains("UMASK"), "{made}");
        // Not with `create_home: false`, nor for a home that exists.
        let no = json!({"name": "tset", "comment": "NyetUser", "create_home": false});
        assert!(m.plan(&no, &mut h).expect("plan").is_empty());
        let mut there = FakeHost::new()
            .answer(
                Match::contains("getent passwd"),
                0,
                probe.replace("NOHOME yes\n", ""),
                "",
            )
            .answer(Match::Any, 0, "", "");
        assert!(m.plan(&params, &mut there).expect("plan").is_empty());
    }

    #[test]
    fn results_never_show_the_password() {
        let p = params(json!({"user": "bob", "password": "$6$secret"}));
        let r = User::result(&p, Passwd::parse("bob:x:1:2::/h:/s").as_ref());
        let text = serde_json::to_string(&r).unwrap_or_default();
        assert!(!text.contains("secret"));
        assert_eq!(r.get("group"), Some(&json!(2)));
    }

    /// A host whose shadow entry for `bob` the fake's usermod and chage edit.
    fn shadow_host() -> crate::testing::FakeHost<Vec<String>> {
        use crate::testing::{ok, FakeHost, Match};
        let entry: Vec<String> = "bob:$6$h:19000:0:99999:7:::"
            .split(':')
            .map(str::to_string)
            .collect();
        FakeHost::with_state(entry)
            .handle(Match::contains("getent passwd"), |h, _, _| {
                ok(format!(
                    "P bob:x:1001:1001::/home/bob:/bin/sh\nS {}\nG bob:x:1001:\n",
                    h.state.join(":")
                ))
            })
            .handle(Match::prefix("usermod"), |h, script, _| {
                let w = crate::shell_quote::split(script).unwrap_or_default();
                let mut i = 1;
                while i < w.len() {
                    match w[i].as_str() {
                        "-L" => h.state[1] = format!("!{}", h.state[1]),
                        "-U" => h.state[1] = h.state[1].trim_start_matches('!').to_string(),
                        "-e" => {
                            i += 1;
                            h.state[7] = match w[i].as_str() {
                                "" => String::new(),
                                "2030-01-01" => "21915".into(),
                                other => panic!("unexpected date {other}"),
                            };
                        }
                        _ => {}
                    }
                    i += 1;
                }
                ok("")
            })
            .handle(Match::prefix("chage"), |h, script, _| {
                let w = crate::shell_quote::split(script).unwrap_or_default();
                for pair in w.windows(2) {
                    let field = match pair[0].as_str() {
                        "-m" => 3,
                        "-M" => 4,
                        "-W" => 5,
                        _ => continue,
                    };
                    h.state[field] = pair[1].clone();
                }
                ok("")
            })
    }

    #[test]
    fn expiry_lock_and_ageing_converge_and_check_mode_changes_nothing() {
        let m: &dyn crate::DynModule = &User;
        let mut h = shadow_host();
        // 2030-01-01T12:00:00Z: compared by day.
        let params = json!({"name": "bob", "expires": 1_893_499_200.5, "password_lock": true,
            "password_expire_max": 90, "password_expire_min": 1, "password_expire_warn": 7});
        let plan = m.plan(&params, &mut h).expect("plan");
        assert_eq!(
            plan.changes,
            [
                "expires never -> 2030-01-01",
                "lock password",
                "password_expire_min 0 -> 1",
                "password_expire_max 99999 -> 90"
            ]
        );
        // Check mode is the plan alone: the host is as it was.
        assert_eq!(h.state[7], "");
        let out = m.apply(&params, plan, &mut h).expect("apply");
        assert!(out.changed);
        assert!(h
            .scripts
            .iter()
            .any(|s| s == "usermod -e 2030-01-01 -L -- bob"));
        assert!(h.scripts.iter().any(|s| s == "chage -m 1 -M 90 -- bob"));
        assert!(m.plan(&params, &mut h).expect("plan").is_empty());
        // Clearing the expiry and unlocking.
        let params = json!({"name": "bob", "expires": -1, "password_lock": false});
        let plan = m.plan(&params, &mut h).expect("plan");
        assert_eq!(
            plan.changes,
            ["expires 2030-01-01 -> never", "unlock password"]
        );
        m.apply(&params, plan, &mut h).expect("apply");
        assert!(m.plan(&params, &mut h).expect("plan").is_empty());
        assert_eq!(h.state[1], "$6$h");
    }

    #[test]
    fn a_new_user_gets_expiry_lock_and_ageing() {
        let f = Found {
            user: None,
            shadow: None,
            groups: vec![],
            ssh_key: None,
            home_missing: false,
        };
        let p = params(json!({"name": "al", "expires": 0, "password": "$6$h",
            "password_lock": true, "password_expire_warn": 3}));
        let (argv, _) = User::command(&p, &f).expect("ok").expect("some");
        assert_eq!(
            argv,
            [
                "useradd",
                "-e",
                "1970-01-01",
                "-p",
                "!$6$h",
                "-m",
                "--",
                "al"
            ]
        );
        let (argv, _) = chage(&p, None).expect("chage");
        assert_eq!(argv, ["chage", "-W", "3", "--", "al"]);
        // A new hash with a lock is one -p with the lock in it, no -L.
        let f = found("bob:x:1001:1001::/home/bob:/bin/sh", "$6$old", GROUPS);
        let p = params(json!({"name": "bob", "password": "$6$new", "password_lock": true}));
        let (argv, _) = User::command(&p, &f).expect("ok").expect("some");
        assert_eq!(argv, ["usermod", "-p", "!$6$new", "--", "bob"]);
    }
}
