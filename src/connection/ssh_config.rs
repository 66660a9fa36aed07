//! The part of OpenSSH's client config (`~/.ssh/config`) that decides where
//! and as whom `herd` connects, so hosts reachable with `ssh name` are
//! reachable with `herd` too.
//!
//! Owns parsing `Host` blocks and resolving one host's settings with
//! OpenSSH's rule that the first value obtained wins. Understood: `HostName`,
//! `User`, `Port`, `IdentityFile`, `IdentitiesOnly`, `StrictHostKeyChecking`,
//! `UserKnownHostsFile`, `ConnectTimeout`, `ServerAliveInterval`,
//! `ServerAliveCountMax`, `ProxyJump`
//! (handed on as written; `jump` parses it). Not understood: `Match` blocks
//! (their settings are skipped, never applied to the wrong host), `Include`,
//! `ProxyCommand`; they are listed in
//! [`SshConfig::unsupported`] so the caller can warn.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::known_hosts::HostKeyChecking;

/// One `Host` (or `Match`) block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    /// `None` for a `Match` block, which never applies here.
    patterns: Option<Vec<String>>,
    /// (keyword in lower case, arguments, line)
    settings: Vec<(String, Vec<String>, usize)>,
}

/// A parsed config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshConfig {
    blocks: Vec<Block>,
    /// (line, keyword) of settings herd does not act on but which change
    /// how `ssh` would connect.
    pub unsupported: Vec<(usize, String)>,
}

/// The settings that apply to one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshConfigHost {
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    pub identities_only: Option<bool>,
    pub strict_host_key_checking: Option<HostKeyChecking>,
    pub user_known_hosts_files: Vec<PathBuf>,
    pub connect_timeout: Option<Duration>,
    pub server_alive_interval: Option<Duration>,
    pub server_alive_count_max: Option<u32>,
    /// `ProxyJump` as written, `none` included (it switches a jump off).
    pub proxy_jump: Option<String>,
}

/// `~/.ssh/config`, if `$HOME` is set.
pub fn default_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".ssh/config"))
}

impl SshConfig {
    /// Read a config file; a missing file is an empty config.
    pub fn load(path: &Path) -> std::io::Result<SshConfig> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(SshConfig::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SshConfig::default()),
            Err(e) => Err(e),
        }
    }

    pub fn parse(text: &str) -> SshConfig {
        let mut config = SshConfig::default();
        // Settings before the first Host line apply to every host.
        let mut current = Block {
            patterns: Some(vec!["*".to_string()]),
            settings: Vec::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let Some((keyword, args)) = split_line(raw) else {
                continue;
            };
            match keyword.as_str() {
                "host" => {
                    config.blocks.push(std::mem::replace(
                        &mut current,
                        Block {
                            patterns: Some(args.iter().map(|a| a.to_lowercase()).collect()),
                            settings: Vec::new(),
                        },
                    ));
                }
                "match" => {
                    config.unsupported.push((line, "Match".to_string()));
                    config.blocks.push(std::mem::replace(
                        &mut current,
                        Block {
                            patterns: None,
                            settings: Vec::new(),
                        },
                    ));
                }
                "include" | "proxycommand" => {
                    config.unsupported.push((line, keyword.clone()));
                }
                _ => current.settings.push((keyword, args, line)),
            }
        }
        config.blocks.push(current);
        config
    }

    /// The settings for `alias` (the name given on the command line or in
    /// the inventory), first value wins as in OpenSSH.
    pub fn for_host(&self, alias: &str) -> SshConfigHost {
        let alias_lc = alias.to_lowercase();
        let mut out = SshConfigHost::default();
        let mut seen_known_hosts = false;
        for block in &self.blocks {
            let Some(patterns) = &block.patterns else {
                continue;
            };
            if !patterns_match(patterns, &alias_lc) {
                continue;
            }
            for (keyword, args, _) in &block.settings {
                let Some(first) = args.first() else { continue };
                match keyword.as_str() {
                    "hostname" if out.host_name.is_none() => {
                        out.host_name = Some(first.replace("%h", alias).replace("%%", "%"));
                    }
                    "user" if out.user.is_none() => out.user = Some(first.clone()),
                    "port" if out.port.is_none() => out.port = first.parse().ok(),
                    "identityfile" => out.identity_files.push(PathBuf::from(first)),
                    "identitiesonly" if out.identities_only.is_none() => {
                        out.identities_only = yes_no(first);
                    }
                    "stricthostkeychecking" if out.strict_host_key_checking.is_none() => {
                        out.strict_host_key_checking = match first.to_lowercase().as_str() {
                            // herd never prompts, so `ask` refuses like `yes`.
                            "yes" | "ask" => Some(HostKeyChecking::Strict),
                            "accept-new" => Some(HostKeyChecking::AcceptNew),
                            "no" | "off" => Some(HostKeyChecking::Off),
                            _ => None,
                        };
                    }
                    "userknownhostsfile" if !seen_known_hosts => {
                        seen_known_hosts = true;
                        out.user_known_hosts_files = args.iter().map(PathBuf::from).collect();
                    }
                    "connecttimeout" if out.connect_timeout.is_none() => {
                        out.connect_timeout = first.parse().ok().map(Duration::from_secs);
                    }
                    "proxyjump" if out.proxy_jump.is_none() => {
                        out.proxy_jump = Some(args.join(" "));
                    }
                    "serveraliveinterval" if out.server_alive_interval.is_none() => {
                        out.server_alive_interval = first.parse().ok().map(Duration::from_secs);
                    }
                    "serveralivecountmax" if out.server_alive_count_max.is_none() => {
                        out.server_alive_count_max = first.parse().ok().filter(|n| *n > 0);
                    }
                    _ => {}
                }
            }
        }
        let host = out.host_name.clone().unwrap_or_else(|| alias.to_string());
        let port = out.port.unwrap_or(22).to_string();
        let user = out.user.clone().unwrap_or_else(super::ssh::current_user);
        let expand = |p: &PathBuf| expand_path(&p.to_string_lossy(), &host, &port, &user);
        out.identity_files = out.identity_files.iter().map(expand).collect();
        out.user_known_hosts_files = out.user_known_hosts_files.iter().map(expand).collect();
        out
    }
}

/// Keyword (lower case) and arguments of one line; `None` for blanks and
/// comments. Accepts `Key value`, `Key=value` and double-quoted arguments.
fn split_line(raw: &str) -> Option<(String, Vec<String>)> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let split = line.find(|c: char| c.is_whitespace() || c == '=')?;
    let keyword = line[..split].to_lowercase();
    let rest = line[split..].trim_start_matches(|c: char| c.is_whitespace() || c == '=');
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    for c in rest.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            c if c.is_whitespace() && !in_quotes => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    Some((keyword, args))
}

fn yes_no(v: &str) -> Option<bool> {
    match v.to_lowercase().as_str() {
        "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

/// A block applies when some pattern matches and no negated one does.
fn patterns_match(patterns: &[String], host: &str) -> bool {
    let mut matched = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(neg, host) {
                return false;
            }
        } else if glob(p, host) {
            matched = true;
        }
    }
    matched
}

/// `*` and `?` wildcards, as ssh_config patterns use.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    // Each step advances `ti` or moves back to the last star with `ti` one
    // further, so this ends within len(p) * len(t) steps.
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `~`, `%d` (home), `%h` (host), `%p` (port), `%r` (remote user), `%u`
/// (local user) and `%%`, as OpenSSH expands them in file names.
fn expand_path(raw: &str, host: &str, port: &str, remote_user: &str) -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    let raw = match raw.strip_prefix("~/") {
        Some(rest) => format!("{home}/{rest}"),
        None if raw == "~" => home.clone(),
        None => raw.to_string(),
    };
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&home),
            Some('h') => out.push_str(host),
            Some('p') => out.push_str(port),
            Some('r') => out.push_str(remote_user),
            Some('u') => out.push_str(&super::ssh::current_user()),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    PathBuf::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
# global defaults come first
ConnectTimeout 7

Host web* !web-legacy
    HostName %h.example.net
    User deploy
    IdentityFile ~/.ssh/deploy_%r
    Port=2222

Host web-legacy
    User old

Match host db*
    User never-applied

Host db1
    HostName 10.1.2.3
    StrictHostKeyChecking accept-new
    UserKnownHostsFile /tmp/kh1 \"/tmp/kh two\"
    ProxyJump bastion

Host *
    User fallback
    Port 22
    IdentityFile /keys/default
    IdentitiesOnly yes
";

    #[test]
    fn first_value_wins_and_patterns_negate() {
        let cfg = SshConfig::parse(CONFIG);
        let web = cfg.for_host("web1");
        assert_eq!(web.host_name.as_deref(), Some("web1.example.net"));
        assert_eq!(web.user.as_deref(), Some("deploy"));
        assert_eq!(web.port, Some(2222));
        assert_eq!(web.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(web.identities_only, Some(true));
        assert_eq!(web.identity_files.len(), 2);
        assert!(web.identity_files[0]
            .to_string_lossy()
            .ends_with("/.ssh/deploy_deploy"));
        assert_eq!(web.identity_files[1], PathBuf::from("/keys/default"));

        let legacy = cfg.for_host("web-legacy");
        assert_eq!(legacy.user.as_deref(), Some("old"));
        assert_eq!(legacy.host_name, None);
        assert_eq!(legacy.port, Some(22));
    }

    #[test]
    fn match_blocks_never_apply_and_are_reported() {
        let cfg = SshConfig::parse(CONFIG);
        let db = cfg.for_host("db1");
        assert_eq!(db.user.as_deref(), Some("fallback"));
        assert_eq!(db.host_name.as_deref(), Some("10.1.2.3"));
        assert_eq!(
            db.strict_host_key_checking,
            Some(HostKeyChecking::AcceptNew)
        );
        assert_eq!(
            db.user_known_hosts_files,
            vec![PathBuf::from("/tmp/kh1"), PathBuf::from("/tmp/kh two")]
        );
        let kinds: Vec<&str> = cfg.unsupported.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(kinds, vec!["Match"]);
        assert_eq!(db.proxy_jump.as_deref(), Some("bastion"));
        assert_eq!(cfg.for_host("web1").proxy_jump, None);
        assert_eq!(cfg.unsupported[0].0, 13);
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("web?", "web1"));
        assert!(!glob("web?", "web10"));
        assert!(glob("*.example.*", "a.example.net"));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("a*b", "aXc"));
        assert!(patterns_match(&["*".into(), "!x".into()], "y"));
        assert!(!patterns_match(&["*".into(), "!x".into()], "x"));
        assert!(!patterns_match(&["!x".into()], "y"));
    }

    #[test]
    fn empty_and_missing_files() {
        assert_eq!(SshConfig::parse("").for_host("h"), SshConfigHost::default());
        let missing = SshConfig::load(Path::new("/nonexistent/herd/ssh_config")).expect("ok");
        assert_eq!(missing, SshConfig::default());
    }
}
