//! `timezone` (community.general): the system's time zone, on Linux.
//!
//! As the collection does on Linux: when `timedatectl` runs, the zone is
//! read from `timedatectl status` (`Time zone:`) and set with
//! `timedatectl set-timezone`; otherwise (Debian without a running
//! systemd) it is read from `/etc/timezone` and the `/etc/localtime` link,
//! and set by rewriting `/etc/timezone`, linking `/etc/localtime` and
//! running `dpkg-reconfigure --frontend noninteractive tzdata`. The zone
//! must exist under `/usr/share/zoneinfo`. One probe reads all of it;
//! apply sets the zone, reads it again and fails when it did not take.
//! The result has `diff` (`before`/`after` with `name`) and, when a
//! command ran, the collection's `msg`.
//!
//! Not supported: `hwclock` (`rtc`) is refused by name (the hardware clock
//! is not managed); other systems than Linux with timedatectl or Debian's
//! files (RedHat's `/etc/sysconfig/clock`, Alpine, the BSDs, macOS,
//! SmartOS, AIX) fail the task.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::params::de_opt_string;
use crate::probe::tagged;
use crate::shell_quote::quote;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `timezone`: what `herd doc` shows, and what the parser takes.
pub struct TimezoneParams {
    /// The zone, as named under `/usr/share/zoneinfo` (`Europe/Paris`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub name: Option<String>,
    /// Not supported: the hardware clock is not managed (a task giving it fails).
    #[serde(default, alias = "rtc", deserialize_with = "de_opt_string")]
    pub hwclock: Option<String>,
}

/// The `timezone` module.
pub struct Timezone;

/// How the host keeps its zone, and the zone it has now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Backend {
    /// `timedatectl` runs; its path.
    Timedatectl(String),
    /// Debian's `/etc/timezone` and `/etc/localtime`.
    DebianFiles {
        /// The lines of `/etc/timezone` (empty when it is missing).
        timezone_file: Option<String>,
    },
}

/// What the probe found.
struct Found {
    backend: Backend,
    /// The zone now, as the collection reads it (`n/a` when it cannot tell).
    current: String,
    zone_exists: bool,
}

fn abort(msg: &str, others: &[String]) -> ModuleError {
    let mut lines = vec!["Error message:".to_string(), msg.to_string()];
    if !others.is_empty() {
        lines.push("Other message(s):".into());
        lines.extend(others.iter().cloned());
    }
    ModuleError::failed(lines.join("\n"))
}

/// The zone named by a `/etc/localtime` link target, as the collection
/// finds it (`.../usr/share/zoneinfo/ZONE` or `/etc/zoneinfo/ZONE`).
fn zone_of_link(target: &str) -> Option<&str> {
    ["/usr/share/zoneinfo/", "/etc/zoneinfo/"]
        .iter()
        .filter_map(|m| target.find(m).map(|i| (i, &target[i + m.len()..])))
        .min_by_key(|(i, _)| *i)
        .map(|(_, z)| z)
}

/// The first line of `/etc/timezone` that starts with a non-space: its
/// first word (`^([^\s]+)` in multiline mode).
fn first_word(text: &str) -> Option<&str> {
    text.lines()
        .find(|l| l.chars().next().is_some_and(|c| !c.is_whitespace()))
        .and_then(|l| l.split_whitespace().next())
}

fn probe(host: &mut dyn Host, zone: &str) -> Result<Found, ModuleError> {
    let zf = quote(&format!("/usr/share/zoneinfo/{zone}"));
    let script = format!(
        "if t=$(command -v timedatectl) && s=$(\"$t\" status 2>/dev/null); then\n\
         printf 'TDC %s\\n' \"$t\"; printf '%s\\n' \"$s\" | sed 's/^/S /'\n\
         fi\n\
         [ -f {zf} ] && echo ZONE\n\
         command -v dpkg-reconfigure >/dev/null && echo DPKG\n\
         if [ -r /etc/timezone ]; then echo TZFILE; sed 's/^/F /' /etc/timezone; fi\n\
         if [ -L /etc/localtime ]; then if [ -e /etc/localtime ]; then printf 'LINK %s\\n' \"$(readlink /etc/localtime)\"; else echo BROKEN; fi\n\
         elif cmp -s /etc/localtime {zf}; then echo SAME; fi\n"
    );
    let out = host.run(&script, None)?;
    let text = out.stdout_str();
    let zone_exists = text.lines().any(|l| l == "ZONE");
    if let Some(t) = tagged(&text, "TDC") {
        let status: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("S ")).collect();
        let current = status
            .iter()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                let k = k.trim();
                (k == "Time zone" || k == "Timezone")
                    .then(|| v.split_whitespace().next())
                    .flatten()
            })
            .ok_or_else(|| ModuleError::failed("timedatectl status shows no time zone"))?
            .to_string();
        return Ok(Found {
            backend: Backend::Timedatectl(t.trim().to_string()),
            current,
            zone_exists,
        });
    }
    if !text.lines().any(|l| l == "DPKG") {
        return Err(ModuleError::failed(
            "timezone: this host has neither a working timedatectl nor Debian's dpkg-reconfigure; \
             only those are supported",
        ));
    }
    let timezone_file = text.lines().any(|l| l == "TZFILE").then(|| {
        text.lines()
            .filter_map(|l| l.strip_prefix("F ").or((l == "F").then_some("")))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    });
    let mut current = match &timezone_file {
        None => "n/a".to_string(),
        Some(t) => first_word(t).unwrap_or("n/a").to_string(),
    };
    if current == zone {
        if let Some(link) = tagged(&text, "LINK") {
            match zone_of_link(link.trim_end()) {
                Some(z) if z != zone => current = z.to_string(),
                Some(_) => {}
                None => current = "n/a".into(),
            }
        } else if text.lines().any(|l| l == "BROKEN") || !text.lines().any(|l| l == "SAME") {
            current = "n/a".into();
        }
    }
    Ok(Found {
        backend: Backend::DebianFiles { timezone_file },
        current,
        zone_exists,
    })
}

fn diff(before: &str, after: &str) -> Value {
    json!({"before": {"name": before}, "after": {"name": after}})
}

impl Timezone {
    fn zone(p: &TimezoneParams) -> Result<&str, ModuleError> {
        if p.hwclock.is_some() {
            return Err(ModuleError::Params(ParamError::Invalid {
                module: Self::NAME,
                path: "hwclock".into(),
                reason: "not supported by herd: the hardware clock is not managed".into(),
            }));
        }
        p.name.as_deref().ok_or_else(|| {
            ModuleError::Params(ParamError::Missing {
                module: Self::NAME,
                field: "name".into(),
            })
        })
    }
}

impl Module for Timezone {
    const NAME: &'static str = "timezone";
    const DOC_SHORT: &'static str = "Set the system's time zone.";
    const DOC_LONG: &'static str = r##"community.general's `timezone` on Linux: `timedatectl set-timezone` where timedatectl runs, else Debian's `/etc/timezone`, the `/etc/localtime` link and `dpkg-reconfigure tzdata`. The zone must exist under `/usr/share/zoneinfo`. `hwclock` is not supported."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Paris time
  community.general.timezone:
    name: Europe/Paris
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("diff", "`before` and `after`, each `{name: ZONE}`."),
        ("msg", "The commands run, when the zone changed."),
    ];
    type Params = TimezoneParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let zone = Self::zone(p)?;
        let found = probe(host, zone)?;
        if !found.zone_exists {
            return Err(abort(
                &format!("given timezone \"{zone}\" is not available"),
                &[],
            ));
        }
        let mut plan = Plan::default();
        plan.result
            .insert("diff".into(), diff(&found.current, zone));
        if found.current != zone {
            plan.changes
                .push(format!("time zone {} -> {zone}", found.current));
        }
        plan.state = match &found.backend {
            Backend::Timedatectl(t) => json!({"timedatectl": t, "before": found.current}),
            Backend::DebianFiles { timezone_file } => {
                json!({"timezone_file": timezone_file, "before": found.current})
            }
        };
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let zone = Self::zone(p)?;
        let before = plan
            .state
            .get("before")
            .and_then(Value::as_str)
            .unwrap_or("n/a")
            .to_string();
        let mut msgs = Vec::new();
        if let Some(t) = plan.state.get("timedatectl").and_then(Value::as_str) {
            let cmd = format!("{t} set-timezone {zone}");
            let out = host.run(&format!("{} set-timezone {}", quote(t), quote(zone)), None)?;
            if !out.success() {
                return Err(ModuleError::failed(out.stderr_str().trim_end().to_string()));
            }
            msgs.push(format!("executed `{cmd}`"));
        } else {
            let old = plan
                .state
                .get("timezone_file")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut lines: Vec<String> = old.split_inclusive('\n').map(str::to_string).collect();
            let matched: Vec<usize> = lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.chars().next().is_some_and(|c| !c.is_whitespace()))
                .map(|(i, _)| i)
                .collect();
            let at = matched.first().copied().unwrap_or(0);
            for i in matched.iter().rev() {
                lines.remove(*i);
            }
            lines.insert(at, format!("{zone}\n"));
            host.write_file(
                "/etc/timezone",
                lines.concat().as_bytes(),
                &Default::default(),
            )?;
            let zf = quote(&format!("/usr/share/zoneinfo/{zone}"));
            let out = host.run(
                &format!(
                    "ln -sf {zf} /etc/localtime && dpkg-reconfigure --frontend noninteractive tzdata"
                ),
                None,
            )?;
            if !out.success() {
                return Err(ModuleError::failed(out.stderr_str().trim_end().to_string()));
            }
            msgs.push(format!(
                "Added 1 line and deleted {} line(s) on /etc/timezone",
                matched.len()
            ));
        }
        let after = probe(host, zone)?.current;
        if after != zone {
            return Err(abort(
                &format!(
                    "still not desired state, though changes have made - planned: {{'name': '{zone}'}}, after: {{'name': '{after}'}}"
                ),
                &msgs,
            ));
        }
        let mut result = serde_json::Map::new();
        result.insert("changed".into(), json!(before != after));
        result.insert("diff".into(), diff(&before, &after));
        result.insert("msg".into(), json!(msgs.join("\n")));
        Ok(Outcome::changed_with_result_msg(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, FakeHost, Match};
    use crate::DynModule;
    use std::sync::{Arc, Mutex};

    const STATUS: &str = "TDC /usr/bin/timedatectl\nS                Local time: Sat 2026-12-05 06:30:58 UTC\nS                 Time zone: ZONE (UTC, +0000)\nZONE\nDPKG\n";

    /// A host whose `timedatectl` keeps the zone it was last set to.
    fn systemd_host(zone: &str) -> (FakeHost, Arc<Mutex<String>>) {
        let z = Arc::new(Mutex::new(zone.to_string()));
        let (z1, z2) = (z.clone(), z.clone());
        let h = FakeHost::new()
            .handle(Match::contains("command -v timedatectl"), move |_, _, _| {
                let now = z1.lock().map(|g| g.clone()).unwrap_or_default();
                crate::testing::ok(STATUS.replace("ZONE (", &format!("{now} (")))
            })
            .handle(Match::contains("set-timezone"), move |_, s, _| {
                if let Ok(mut g) = z2.lock() {
                    *g = s
                        .rsplit(' ')
                        .next()
                        .unwrap_or_default()
                        .trim_matches('\'')
                        .to_string();
                }
                crate::testing::ok("")
            })
            .strict();
        (h, z)
    }

    #[test]
    fn sets_the_zone_with_timedatectl_then_plan_is_empty() {
        let (mut h, zone) = systemd_host("Etc/UTC");
        let p = json!({"name": "Europe/Paris"});
        let pl = DynModule::plan(&Timezone, &p, &mut h).expect("plan");
        assert_eq!(pl.changes, ["time zone Etc/UTC -> Europe/Paris"]);
        // Check mode is the plan alone: nothing was set.
        assert_eq!(
            zone.lock().map(|g| g.clone()).ok().as_deref(),
            Some("Etc/UTC")
        );
        assert_eq!(
            get(&pl.result, "diff"),
            &json!({"before": {"name": "Etc/UTC"}, "after": {"name": "Europe/Paris"}})
        );
        let out = DynModule::apply(&Timezone, &p, pl, &mut h).expect("apply");
        assert!(out.changed);
        assert_eq!(
            out.msg.as_deref(),
            Some("executed `/usr/bin/timedatectl set-timezone Europe/Paris`")
        );
        let again = DynModule::plan(&Timezone, &p, &mut h).expect("plan");
        assert!(again.is_empty());
    }

    #[test]
    fn refuses_hwclock_and_unknown_zones() {
        let (mut h, _) = systemd_host("Etc/UTC");
        let e = DynModule::plan(&Timezone, &json!({"name": "UTC", "hwclock": "UTC"}), &mut h)
            .expect_err("hwclock refused");
        assert!(e.to_string().contains("hwclock"), "{e}");
        let mut h = FakeHost::new().answer(
            Match::contains("command -v timedatectl"),
            0,
            "TDC /usr/bin/timedatectl\nS Time zone: Etc/UTC (UTC, +0000)\n",
            "",
        );
        let e = DynModule::plan(&Timezone, &json!({"name": "Mars/Olympus"}), &mut h)
            .expect_err("no such zone");
        assert_eq!(
            e.to_string(),
            "Error message:\ngiven timezone \"Mars/Olympus\" is not available"
        );
    }

    #[test]
    fn debian_files_without_timedatectl() {
        let mut h = FakeHost::new().answer(
            Match::contains("command -v timedatectl"),
            0,
            "ZONE\nDPKG\nTZFILE\nF Etc/UTC\nLINK /usr/share/zoneinfo/Etc/UTC\n",
            "",
        );
        let p = json!({"name": "Europe/Paris"});
        let pl = DynModule::plan(&Timezone, &p, &mut h).expect("plan");
        assert_eq!(pl.changes, ["time zone Etc/UTC -> Europe/Paris"]);
        // The file names the zone but the link points elsewhere: the link's zone counts.
        let mut h = FakeHost::new().answer(
            Match::contains("command -v timedatectl"),
            0,
            "ZONE\nDPKG\nTZFILE\nF Europe/Paris\nLINK /usr/share/zoneinfo/Etc/UTC\n",
            "",
        );
        let pl = DynModule::plan(&Timezone, &p, &mut h).expect("plan");
        assert_eq!(get(&pl.result, "diff")["before"]["name"], "Etc/UTC");
        assert_eq!(
            zone_of_link("../usr/share/zoneinfo/Asia/Tokyo"),
            Some("Asia/Tokyo")
        );
        assert_eq!(
            first_word("\n  x\nEurope/Oslo extra\n"),
            Some("Europe/Oslo")
        );
    }
}
