//! `mount`: a filesystem's line in fstab, and whether it is mounted.
//!
//! The plan reads the fstab, `/proc/mounts` and whether the mount point
//! exists in one round trip. Fstab lines are matched and rewritten as
//! Ansible does (by mount point; a line whose src, fstype, opts, dump or
//! passno differ is rewritten as `src path fstype opts dump passno`), the
//! rest of the file is kept. States:
//! - `present`/`absent`: the fstab line only (`absent` also unmounts and
//!   removes the mount point directory when it removed a line);
//! - `mounted`: the line, the mount point, and `mount PATH` (or a remount
//!   when the line changed while mounted);
//! - `unmounted`: `umount PATH` when mounted; `remounted`: always remounts.
//!
//! A mount that fails (for example a host without the capability to
//! mount) fails the task with `Error mounting PATH:` and mount's message.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::host::FileAttrs;
use crate::params::{de_bool, de_opt_string, yes};
use crate::shell_quote::{join, quote};
use crate::textfile::{self, lines_of};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// What `mount` makes a mount point.
pub enum MountState {
    /// In fstab and mounted.
    Mounted,
    /// Not mounted; fstab left alone.
    Unmounted,
    /// In fstab only.
    Present,
    /// Unmounted and out of fstab.
    Absent,
    /// Remounted now.
    Remounted,
    /// Only remove the fstab line; leave what is mounted alone.
    #[serde(rename = "absent_from_fstab")]
    AbsentFromFstab,
}

fn zero() -> String {
    "0".into()
}

fn defaults() -> String {
    "defaults".into()
}

fn default_fstab() -> String {
    "/etc/fstab".into()
}

fn de_num_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    de_opt_string(d).map(|v| v.unwrap_or_else(zero))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `mount`: what `herd doc` shows, and what the parser takes.
pub struct MountParams {
    /// The mount point.
    #[serde(alias = "name")]
    pub path: String,
    /// The device, `UUID=...`, `LABEL=...`, remote share or `tmpfs` to mount (required for
    /// `mounted` and `present`).
    pub src: Option<String>,
    /// The file system type (required for `mounted` and `present`).
    pub fstype: Option<String>,
    /// Mount options.
    #[serde(default = "defaults")]
    pub opts: String,
    /// The fstab dump field.
    #[serde(default = "zero", deserialize_with = "de_num_string")]
    pub dump: String,
    /// The fstab pass field.
    #[serde(default = "zero", deserialize_with = "de_num_string")]
    pub passno: String,
    /// `mounted`: in fstab and mounted (the mount point is created); `present`: in fstab only;
    /// `unmounted`: not mounted, fstab left alone; `absent`: unmounted and out of fstab (the
    /// mount point removed); `absent_from_fstab`: out of fstab only; `remounted`: remount now.
    pub state: MountState,
    /// The fstab file to edit.
    #[serde(default = "default_fstab")]
    pub fstab: String,
    /// `false` adds `noauto` to the options, so the file system is not mounted at boot.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub boot: bool,
    /// Keep a timestamped copy of the file (`FILE.PID.YYYY-MM-DD@HH:MM:SS~`) before changing
    /// it; its path is returned as `backup_file`.
    #[serde(default, deserialize_with = "de_bool")]
    pub backup: bool,
}

/// The `mount` module.
pub struct Mount;

/// Ansible's `_escape_fstab`: octal escapes for what would split a field.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012")
}

/// The wanted fields, escaped, in fstab order.
struct Entry {
    src: String,
    path: String,
    fstype: String,
    opts: String,
    dump: String,
    passno: String,
}

impl Entry {
    fn line(&self) -> String {
        format!(
            "{} {} {} {} {} {}\n",
            self.src, self.path, self.fstype, self.opts, self.dump, self.passno
        )
    }
}

/// The fstab with `want` in it (rewriting every line for its mount point
/// whose fields differ, appending when there is none), or without any line
/// for `path` (`want` is `None`). `None` when nothing changes.
fn edit_fstab(text: &str, path: &str, want: Option<&Entry>) -> Option<String> {
    let mut out = String::new();
    let mut found = false;
    let mut changed = false;
    for raw in lines_of(text.as_bytes()) {
        let line = String::from_utf8_lossy(&raw).into_owned();
        let f: Vec<&str> = line.split_whitespace().collect();
        let entry = !line.trim().is_empty()
            && !line.trim_start().starts_with('#')
            && (4..=6).contains(&f.len());
        if !entry || f[1] != path {
            out.push_str(&line);
            continue;
        }
        found = true;
        let Some(w) = want else {
            changed = true;
            continue;
        };
        let have = [
            f[0],
            f[2],
            f[3],
            f.get(4).unwrap_or(&"0"),
            f.get(5).unwrap_or(&"0"),
        ];
        let wanted = [
            w.src.as_str(),
            w.fstype.as_str(),
            w.opts.as_str(),
            w.dump.as_str(),
            w.passno.as_str(),
        ];
        if have == wanted {
            out.push_str(&line);
        } else {
            changed = true;
            out.push_str(&w.line());
        }
    }
    if let (Some(w), false) = (want, found) {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&w.line());
        changed = true;
    }
    changed.then_some(out)
}

/// Whether `/proc/mounts` text has something mounted on `path` (escaped).
fn is_mounted(mounts: &str, path: &str) -> bool {
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(path))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
enum Action {
    Mount,
    Remount,
    Umount,
}

/// What apply needs from the plan.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Planned {
    /// The fstab before, to put back when `mounted` fails to mount.
    before: String,
    fstab: Option<String>,
    fstab_exists: bool,
    mkdir: bool,
    action: Option<Action>,
    rmdir: bool,
}

const MARK: &str = "--herd-fstab--";

impl Mount {
    fn path(p: &MountParams) -> Result<String, ModuleError> {
        let path = if p.path.len() > 1 {
            p.path.trim_end_matches('/')
        } else {
            p.path.as_str()
        };
        if !path.starts_with('/') {
            return Err(ModuleError::Params(ParamError::Invalid {
                module: Self::NAME,
                path: "path".into(),
                reason: "must be an absolute path".into(),
            }));
        }
        Ok(path.to_string())
    }

    fn entry(p: &MountParams, path: &str) -> Result<Entry, ModuleError> {
        let missing = |f: &str| {
            ModuleError::Params(ParamError::Missing {
                module: Self::NAME,
                field: f.into(),
            })
        };
        let mut opts = p.opts.clone();
        if !p.boot && !opts.split(',').any(|o| o == "noauto") {
            opts.push_str(",noauto");
        }
        Ok(Entry {
            src: escape(p.src.as_deref().ok_or_else(|| missing("src"))?),
            path: escape(path),
            fstype: escape(p.fstype.as_deref().ok_or_else(|| missing("fstype"))?),
            opts: escape(&opts),
            dump: p.dump.clone(),
            passno: p.passno.clone(),
        })
    }

    /// `mount`/`umount` with `-T FSTAB` for a fstab other than the default.
    fn command(p: &MountParams, path: &str, action: Action) -> String {
        let mut argv: Vec<&str> = match action {
            Action::Mount => vec!["mount"],
            Action::Remount => vec!["mount", "-o", "remount"],
            Action::Umount => vec!["umount"],
        };
        if action != Action::Umount && p.fstab != "/etc/fstab" {
            argv.extend(["-T", p.fstab.as_str()]);
        }
        argv.push(path);
        join(&argv)
    }
}

impl Module for Mount {
    const NAME: &'static str = "mount";
    const DOC_SHORT: &'static str = "Manage fstab entries and what is mounted.";
    const DOC_LONG: &'static str = r##"Other fstab lines keep their spelling; new lines are `src path fstype opts dump passno`."##;
    const DOC_EXAMPLE: &'static str = r##"- mount:
    path: /mnt/scratch
    src: tmpfs
    fstype: tmpfs
    opts: size=512m
    state: mounted
"##;
    type Params = MountParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let path = Self::path(p)?;
        let want = match p.state {
            MountState::Present | MountState::Mounted => Some(Self::entry(p, &path)?),
            _ => None,
        };
        let pw = quote(&path);
        let fw = quote(&p.fstab);
        let script = format!(
            "[ -e {pw} ] && echo EXISTS\n[ -f {fw} ] && echo FSTAB\n\
             echo MOUNTS; cat /proc/mounts\necho {MARK}; [ -f {fw} ] && cat -- {fw}; true\n"
        );
        let out = host.run(&script, None)?;
        let text = out.stdout_str();
        let (head, fstab) = text
            .split_once(&format!("{MARK}\n"))
            .unwrap_or((text.as_str(), ""));
        let (flags, mounts) = head.split_once("MOUNTS\n").unwrap_or((head, ""));
        let exists = flags.lines().any(|l| l == "EXISTS");
        let fstab_exists = flags.lines().any(|l| l == "FSTAB");
        let mounted = is_mounted(mounts, &escape(&path));

        let new_fstab = match p.state {
            MountState::Present | MountState::Mounted => {
                edit_fstab(fstab, &escape(&path), want.as_ref())
            }
            MountState::Absent | MountState::AbsentFromFstab => {
                edit_fstab(fstab, &escape(&path), None)
            }
            _ => None,
        };
        let mut plan = Plan::default();
        if new_fstab.is_some() {
            plan.changes.push(match p.state {
                MountState::Absent | MountState::AbsentFromFstab => {
                    format!("remove {path} from {}", p.fstab)
                }
                _ => format!("{path} in {}", p.fstab),
            });
        }
        if let Some(after) = &new_fstab {
            if let Some(d) = textfile::diff(&p.fstab, fstab.as_bytes(), after.as_bytes()) {
                plan.diffs.push(d);
            }
        }
        let (action, mkdir, rmdir) = match p.state {
            MountState::Present | MountState::AbsentFromFstab => (None, false, false),
            MountState::Absent => {
                let removed = new_fstab.is_some();
                (
                    (removed && mounted).then_some(Action::Umount),
                    false,
                    removed && exists,
                )
            }
            MountState::Mounted if mounted => {
                (new_fstab.is_some().then_some(Action::Remount), false, false)
            }
            MountState::Mounted => (Some(Action::Mount), !exists, false),
            MountState::Unmounted => (mounted.then_some(Action::Umount), false, false),
            MountState::Remounted => (Some(Action::Remount), false, false),
        };
        match action {
            Some(Action::Mount) => plan.changes.push(format!("mount {path}")),
            Some(Action::Remount) => plan.changes.push(format!("remount {path}")),
            Some(Action::Umount) => plan.changes.push(format!("unmount {path}")),
            None => {}
        }
        let mut result = Map::new();
        for (k, v) in [
            ("name", json!(path)),
            ("path", json!(path)),
            ("src", json!(p.src)),
            ("fstype", json!(p.fstype)),
            ("opts", json!(p.opts)),
            ("dump", json!(p.dump)),
            ("passno", json!(p.passno)),
            ("fstab", json!(p.fstab)),
            ("boot", json!(p.boot)),
        ] {
            result.insert(k.into(), v);
        }
        plan.result = result;
        plan.state = json!(Planned {
            before: fstab.to_string(),
            fstab: new_fstab,
            fstab_exists,
            mkdir,
            action,
            rmdir,
        });
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let pl: Planned = serde_json::from_value(plan.state.clone())
            .map_err(|_| ModuleError::failed("mount: apply called without a plan"))?;
        let path = Self::path(p)?;
        let mut result: Map<String, Value> = plan.result;
        if let Some(text) = &pl.fstab {
            if p.backup && pl.fstab_exists {
                let b = textfile::backup(host, &p.fstab)?;
                result.insert("backup_file".into(), json!(b));
            }
            let attrs = FileAttrs {
                mode: (!pl.fstab_exists).then(|| "0644".to_string()),
                ..FileAttrs::default()
            };
            host.write_file(&p.fstab, text.as_bytes(), &attrs)?;
        }
        if pl.mkdir {
            textfile::run_checked(
                host,
                "create the mount point",
                &format!("mkdir -p -- {}", quote(&path)),
            )?;
        }
        if let Some(action) = pl.action {
            let out = host.run(&Self::command(p, &path, action), None)?;
            // A remount the filesystem refuses is done as umount + mount,
            // as Ansible does.
            let out = if !out.success() && action == Action::Remount {
                let again = format!(
                    "{} && {}",
                    Self::command(p, &path, Action::Umount),
                    Self::command(p, &path, Action::Mount)
                );
                host.run(&again, None)?
            } else {
                out
            };
            if !out.success() {
                if p.state == MountState::Mounted {
                    // A line that cannot be mounted may break the next
                    // boot: put the fstab and the mount point back, as
                    // Ansible does, before failing.
                    if pl.fstab.is_some() {
                        host.write_file(&p.fstab, pl.before.as_bytes(), &FileAttrs::default())?;
                    }
                    if pl.mkdir {
                        host.run(&format!("rmdir -- {}", quote(&path)), None)?;
                    }
                }
                let what = match action {
                    Action::Mount => "mounting",
                    Action::Remount => "remounting",
                    Action::Umount => "unmounting",
                };
                return Err(ModuleError::failed(format!(
                    "Error {what} {path}: {}",
                    out.stderr_str().trim_end()
                )));
            }
        }
        if pl.rmdir {
            let out = host.run(&format!("rmdir -- {}", quote(&path)), None)?;
            if !out.success() {
                return Err(ModuleError::failed(format!(
                    "Error rmdir {path}: {}",
                    out.stderr_str().trim_end()
                )));
            }
        }
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{converge, path_in};

    fn entry(path: &str, opts: &str) -> Entry {
        Entry {
            src: "tmpfs".into(),
            path: path.into(),
            fstype: "tmpfs".into(),
            opts: opts.into(),
            dump: "0".into(),
            passno: "0".into(),
        }
    }

    #[test]
    fn fstab_lines_like_ansible() {
        let fstab = "# <file system> <mount point>\nUUID=x / ext4 errors=remount-ro 0 1\n";
        let e = entry("/mnt/a", "size=1m");
        let added = edit_fstab(fstab, "/mnt/a", Some(&e)).expect("added");
        assert_eq!(added, format!("{fstab}tmpfs /mnt/a tmpfs size=1m 0 0\n"));
        assert_eq!(edit_fstab(&added, "/mnt/a", Some(&e)), None);
        // Four fields mean dump and passno 0.
        assert_eq!(
            edit_fstab("tmpfs\t/mnt/a  tmpfs size=1m\n", "/mnt/a", Some(&e)),
            None
        );
        let changed = edit_fstab(&added, "/mnt/a", Some(&entry("/mnt/a", "size=2m")));
        assert_eq!(
            changed,
            Some(format!("{fstab}tmpfs /mnt/a tmpfs size=2m 0 0\n"))
        );
        assert_eq!(edit_fstab(&added, "/mnt/a", None), Some(fstab.to_string()));
        assert_eq!(edit_fstab(fstab, "/mnt/a", None), None);
        assert_eq!(escape("/mnt/my disk"), "/mnt/my\\040disk");
        assert!(is_mounted(
            "tmpfs /mnt/my\\040disk tmpfs rw 0 0\n",
            "/mnt/my\\040disk"
        ));
    }

    #[test]
    fn present_and_absent_edit_a_fstab_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fstab = path_in(&dir, "fstab");
        std::fs::write(&fstab, "# empty\n").expect("write");
        let mp = path_in(&dir, "mnt");
        let present = json!({"path": format!("{mp}/"), "src": "tmpfs", "fstype": "tmpfs",
            "state": "present", "fstab": fstab, "boot": "no"});
        converge(&Mount, &present);
        assert_eq!(
            std::fs::read_to_string(&fstab).ok(),
            Some(format!("# empty\ntmpfs {mp} tmpfs defaults,noauto 0 0\n"))
        );
        let only = json!({"path": mp, "state": "absent_from_fstab", "fstab": fstab});
        let pl = crate::testing::plan(&Mount, &only);
        assert_eq!(pl.changes.len(), 1, "{:?}", pl.changes);
        let absent = json!({"path": mp, "state": "absent", "fstab": fstab});
        converge(&Mount, &absent);
        assert_eq!(
            std::fs::read_to_string(&fstab).ok().as_deref(),
            Some("# empty\n")
        );
        let missing = json!({"path": mp, "state": "present", "fstab": fstab});
        assert!(matches!(
            crate::DynModule::plan(&Mount, &missing, &mut crate::testing::host()),
            Err(ModuleError::Params(_))
        ));
    }
}
