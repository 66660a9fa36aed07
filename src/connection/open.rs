//! Opening a host's connection from its variables, the command line and
//! the user's `~/.ssh/config`: which transport (`local` or `ssh`), which
//! address, port, user, key and host-key policy.
//!
//! OpenSSH options that people put in `ansible_ssh_common_args` and
//! `ansible_ssh_extra_args` (`-o Key=Value`, `-J`) are read with the same
//! parser as `~/.ssh/config` and take precedence over it, as `ssh -o` does;
//! options we do not act on are returned so the caller can warn once.
//!
//! `ProxyJump` routes the session through a bastion from the run's
//! [`JumpRegistry`], so all targets behind one bastion share its connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use herdsman_modules::{Host, HostError};
use serde_json::{Map, Value};

use super::jump::{JumpRegistry, JumpRoute, JumpSpec};
use super::local::LocalHost;
use super::ssh::{Dial, HostKeyChecking, SshHost, SshOptions, SshTarget};
use super::ssh_config::{SshConfig, SshConfigHost};

/// Connection settings from the command line, shared by every host.
#[derive(Clone, Default)]
pub struct ConnectSettings {
    pub remote_user: Option<String>,
    /// ansible.cfg `remote_user`: below a play's `remote_user`.
    pub config_remote_user: Option<String>,
    /// ansible.cfg `remote_port`: below a play's or task's `port`.
    pub config_remote_port: Option<u16>,
    /// ansible.cfg `[ssh_connection] ssh_args`: placed before
    /// `ansible_ssh_common_args` on Ansible's ssh command line, so its
    /// options win as ssh's first-given value does.
    pub ssh_args: Option<String>,
    pub private_key: Option<PathBuf>,
    /// `--host-key-checking`; `None` = ssh config, then accept-new.
    pub host_key_checking: Option<HostKeyChecking>,
    /// `--known-hosts` files, read before the defaults.
    pub known_hosts: Vec<PathBuf>,
    /// `-k/--ask-pass`.
    pub password: Option<String>,
    /// `--ask-key-pass`.
    pub key_passphrase: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub command_timeout: Option<Duration>,
    /// `--max-command-output`: bytes a command may print on each stream;
    /// `None` is [`herdsman_modules::DEFAULT_MAX_OUTPUT`].
    pub max_output: Option<u64>,
    /// `~/.ssh/config`, loaded once.
    pub ssh_config: Option<SshConfig>,
    /// The run's jump hosts, shared by every clone of these settings.
    pub jumps: Arc<JumpRegistry>,
}

impl std::fmt::Debug for ConnectSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords and passphrases never reach a log.
        f.debug_struct("ConnectSettings")
            .field("remote_user", &self.remote_user)
            .field("private_key", &self.private_key)
            .field("host_key_checking", &self.host_key_checking)
            .field("known_hosts", &self.known_hosts)
            .finish()
    }
}

/// What a play says about connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlayConnection<'a> {
    pub connection: Option<&'a str>,
    pub remote_user: Option<&'a str>,
    /// The `port` keyword in force (task, block, role or play).
    pub port: Option<u16>,
}

/// An opened connection and the options it could not honour.
pub struct Opened {
    pub host: Box<dyn Host>,
    pub ignored_options: Vec<String>,
}

fn var_str<'a>(vars: &'a Map<String, Value>, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| vars.get(*n).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

fn var_string(vars: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match vars.get(*n) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// The transport a host uses: `ansible_connection`, then the task's or
/// play's `connection:`, then `local` for localhost and `ssh` for everything else.
pub fn transport(name: &str, vars: &Map<String, Value>, play: PlayConnection) -> String {
    var_str(vars, &["ansible_connection"])
        .or(play.connection)
        .map(str::to_string)
        .unwrap_or_else(|| {
            if name == "localhost" || name == "127.0.0.1" {
                "local".into()
            } else {
                "ssh".into()
            }
        })
}

/// What tells one session to `name` from another: the transport and,
/// for ssh, the address, port, user, key, password and jump host these
/// variables and settings give. Two tasks with the same key share a session;
/// a task whose key differs (another `ansible_user`, `remote_user`,
/// `ansible_port`, ...) gets its own, as Ansible's persistent connections
/// are one per host, port and user. The password enters only as a hash.
pub fn session_key(
    name: &str,
    vars: &Map<String, Value>,
    play: PlayConnection,
    settings: &ConnectSettings,
) -> String {
    use std::hash::{Hash, Hasher};
    let transport = transport(name, vars, play);
    if !matches!(transport.as_str(), "ssh" | "paramiko" | "smart") {
        return transport;
    }
    let (target, options, _) = ssh_settings(name, vars, play, settings);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    target.password.hash(&mut hasher);
    format!(
        "ssh {}@{}:{} key={:?} pw={:x} jump={:?} known={:?}",
        target.user,
        target.address,
        target.port,
        target.private_key,
        hasher.finish(),
        options.proxy_jump,
        options.known_hosts_files,
    )
}

/// Open the connection for inventory host `name` with variables `vars`.
pub fn open(
    name: &str,
    vars: &Map<String, Value>,
    play: PlayConnection,
    settings: &ConnectSettings,
) -> Result<Opened, HostError> {
    match transport(name, vars, play).as_str() {
        "local" => {
            // -vvv: which transport each host got.
            tracing::info!(host = name, "local connection");
            Ok(Opened {
                host: Box::new(
                    LocalHost::new(name).with_max_output(
                        settings
                            .max_output
                            .unwrap_or(herdsman_modules::DEFAULT_MAX_OUTPUT),
                    ),
                ),
                ignored_options: Vec::new(),
            })
        }
        "ssh" | "paramiko" | "smart" => {
            let (target, options, ignored) = ssh_settings(name, vars, play, settings);
            let via = jump_route(&target, &options, settings)?;
            let started = std::time::Instant::now();
            let host = SshHost::connect_via(&target, &options, via).map_err(HostError::from)?;
            // -vvv: where each host was reached, as whom, and how fast.
            tracing::info!(
                host = name,
                "ssh connection to {}@{}:{} in {} ms",
                target.user,
                target.address,
                target.port,
                started.elapsed().as_millis()
            );
            Ok(Opened {
                host: Box::new(host),
                ignored_options: ignored,
            })
        }
        other => Err(HostError::Unreachable(format!(
            "connection type `{other}` is not supported (use `ssh` or `local`)"
        ))),
    }
}

/// The bastion `target` is reached through, if its options name one.
/// The bastion's address, port, user and key come from the `ProxyJump`
/// value, then `~/.ssh/config` for the bastion's name, as `ssh -J` does;
/// its key falls back to the target's (one fleet key is the common case).
/// Host-key policy, known_hosts files and timeouts are the target's. The
/// target's password is never offered to the bastion.
pub fn jump_route(
    target: &SshTarget,
    options: &SshOptions,
    settings: &ConnectSettings,
) -> Result<Option<Arc<dyn Dial>>, HostError> {
    let Some(bastion) = bastion_target(target, options, settings)? else {
        return Ok(None);
    };
    let mut bastion_options = options.clone();
    bastion_options.proxy_jump = None;
    Ok(Some(Arc::new(JumpRoute {
        registry: settings.jumps.clone(),
        bastion,
        options: bastion_options,
    })))
}

fn bastion_target(
    target: &SshTarget,
    options: &SshOptions,
    settings: &ConnectSettings,
) -> Result<Option<SshTarget>, HostError> {
    let Some(value) = options.proxy_jump.as_deref() else {
        return Ok(None);
    };
    let spec = JumpSpec::parse(value)
        .map_err(|e| HostError::Unreachable(format!("{}: {e}", target.name)))?;
    let Some(spec) = spec else {
        return Ok(None);
    };
    let from_file = settings
        .ssh_config
        .as_ref()
        .map(|c| c.for_host(&spec.host))
        .unwrap_or_default();
    if from_file
        .proxy_jump
        .as_deref()
        .is_some_and(|j| !j.eq_ignore_ascii_case("none"))
    {
        return Err(HostError::Unreachable(format!(
            "{}: jump host {} has a ProxyJump of its own; chained jump hosts are not supported",
            target.name, spec.host
        )));
    }
    Ok(Some(SshTarget {
        address: from_file
            .host_name
            .clone()
            .unwrap_or_else(|| spec.host.clone()),
        port: spec.port.or(from_file.port).unwrap_or(22),
        user: spec
            .user
            .clone()
            .or_else(|| from_file.user.clone())
            .unwrap_or_else(super::ssh::current_user),
        private_key: from_file
            .identity_files
            .first()
            .cloned()
            .or_else(|| target.private_key.clone()),
        password: None,
        name: spec.host,
    }))
}

/// A key path as Ansible takes it: `~/` is the controller user's home.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// `-o Key=Value`, `-o Key Value`, `-oKey=Value` and `-J host` from an
/// ansible_ssh_*_args string, as ssh_config lines.
fn args_as_config_lines(args: &str) -> (Vec<String>, Vec<String>) {
    let words = crate::kv::split_words(args).unwrap_or_default();
    let mut lines = Vec::new();
    let mut ignored = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        if w == "-o" {
            if let Some(opt) = it.next() {
                lines.push(opt);
            }
        } else if let Some(opt) = w.strip_prefix("-o") {
            lines.push(opt.to_string());
        } else if w == "-J" {
            if let Some(j) = it.next() {
                lines.push(format!("ProxyJump {j}"));
            }
        } else {
            ignored.push(w);
        }
    }
    (lines, ignored)
}

/// The target and options for one host, and the options left unused.
pub fn ssh_settings(
    name: &str,
    vars: &Map<String, Value>,
    play: PlayConnection,
    settings: &ConnectSettings,
) -> (SshTarget, SshOptions, Vec<String>) {
    let mut ignored = Vec::new();
    let mut arg_lines = Vec::new();
    if let Some(args) = settings
        .ssh_args
        .as_deref()
        .filter(|a| !a.trim().is_empty())
    {
        let (lines, rest) = args_as_config_lines(args);
        arg_lines.extend(lines);
        ignored.extend(rest);
    }
    for key in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
        if let Some(args) = var_str(vars, &[key]) {
            let (lines, rest) = args_as_config_lines(args);
            arg_lines.extend(lines);
            ignored.extend(rest);
        }
    }
    let from_args: SshConfigHost = if arg_lines.is_empty() {
        SshConfigHost::default()
    } else {
        let text = format!("Host *\n{}\n", arg_lines.join("\n"));
        let parsed = SshConfig::parse(&text);
        ignored.extend(parsed.unsupported.iter().map(|(_, k)| k.clone()));
        parsed.for_host(name)
    };
    let from_file = settings
        .ssh_config
        .as_ref()
        .map(|c| c.for_host(name))
        .unwrap_or_default();

    let address = var_string(vars, &["ansible_host", "ansible_ssh_host"])
        .or_else(|| from_args.host_name.clone())
        .or_else(|| from_file.host_name.clone())
        .unwrap_or_else(|| name.to_string());
    // As for the user: variables, then the `port` keyword, then
    // ansible.cfg's `remote_port`, then ssh's own configuration.
    let port = var_string(vars, &["ansible_port", "ansible_ssh_port"])
        .and_then(|p| p.parse().ok())
        .or(play.port)
        .or(settings.config_remote_port)
        .or(from_args.port)
        .or(from_file.port)
        .unwrap_or(22);
    // As in Ansible: variables, then the task's or play's `remote_user`
    // keyword, then `-u`, then ansible.cfg; a keyword beats the command line.
    let user = var_string(vars, &["ansible_user", "ansible_ssh_user"])
        .or_else(|| play.remote_user.map(str::to_string))
        .or_else(|| settings.remote_user.clone())
        .or_else(|| settings.config_remote_user.clone())
        .or_else(|| from_args.user.clone())
        .or_else(|| from_file.user.clone())
        .unwrap_or_else(super::ssh::current_user);
    let private_key = var_string(
        vars,
        &["ansible_ssh_private_key_file", "ansible_private_key_file"],
    )
    .map(|p| expand_home(&p))
    .or_else(|| settings.private_key.clone())
    .or_else(|| from_args.identity_files.first().cloned())
    .or_else(|| from_file.identity_files.first().cloned());
    let password = var_string(
        vars,
        &[
            "ansible_password",
            "ansible_ssh_pass",
            "ansible_ssh_password",
        ],
    )
    .or_else(|| settings.password.clone());
    if let Some(pw) = &password {
        crate::secrets::mark(pw);
    }

    let mut options = SshOptions {
        host_key_checking: settings
            .host_key_checking
            .or(from_args.strict_host_key_checking)
            .or(from_file.strict_host_key_checking)
            .unwrap_or_default(),
        ..SshOptions::default()
    };
    let mut known = settings.known_hosts.clone();
    known.extend(from_args.user_known_hosts_files.iter().cloned());
    known.extend(from_file.user_known_hosts_files.iter().cloned());
    if !known.is_empty() {
        // Explicit files come first, so new keys are recorded there.
        known.extend(options.known_hosts_files.iter().cloned());
        options.known_hosts_files = known;
    }
    if let Some(t) = settings
        .connect_timeout
        .or(from_args.connect_timeout)
        .or(from_file.connect_timeout)
    {
        options.connect_timeout = t;
    }
    options.command_timeout = settings.command_timeout;
    if let Some(m) = settings.max_output {
        options.max_output = m;
    }
    if let Some(k) = from_args
        .server_alive_interval
        .or(from_file.server_alive_interval)
    {
        options.keepalive_interval = k;
    }
    if let Some(n) = from_args
        .server_alive_count_max
        .or(from_file.server_alive_count_max)
    {
        options.keepalive_count_max = n;
    }
    options.key_passphrase = settings.key_passphrase.clone();
    options.proxy_jump = from_args
        .proxy_jump
        .clone()
        .or_else(|| from_file.proxy_jump.clone());
    if from_args.identities_only == Some(true) || from_file.identities_only == Some(true) {
        options.use_agent = false;
        options.default_key_files.clear();
    }
    let target = SshTarget {
        name: name.to_string(),
        address,
        port,
        user,
        private_key,
        password,
    };
    (target, options, ignored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn inventory_vars_decide_target() {
        let v = vars(
            json!({"ansible_host": "10.77.0.11", "ansible_port": 2222, "ansible_user": "deploy",
            "ansible_ssh_private_key_file": "/k"}),
        );
        let (t, o, ignored) = ssh_settings(
            "web1",
            &v,
            PlayConnection::default(),
            &ConnectSettings::default(),
        );
        assert_eq!(
            (t.address.as_str(), t.port, t.user.as_str()),
            ("10.77.0.11", 2222, "deploy")
        );
        assert_eq!(t.private_key, Some(PathBuf::from("/k")));
        assert_eq!(o.host_key_checking, HostKeyChecking::AcceptNew);
        let v = vars(json!({"ansible_ssh_private_key_file": "~/.ssh/deploy"}));
        let (t, _, _) = ssh_settings(
            "web1",
            &v,
            PlayConnection::default(),
            &ConnectSettings::default(),
        );
        let home = std::env::var_os("HOME").map(PathBuf::from);
        if let Some(home) = home {
            assert_eq!(t.private_key, Some(home.join(".ssh/deploy")));
        }
        assert!(ignored.is_empty());
    }

    #[test]
    fn common_args_options_are_honoured_or_reported() {
        let v = vars(json!({"ansible_ssh_common_args":
            "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/tmp/kh -o Port=2200 -o ConnectTimeout=3 -o ServerAliveInterval=2 -o ServerAliveCountMax=4 -J bastion -C"}));
        let (t, o, ignored) = ssh_settings(
            "db1",
            &v,
            PlayConnection::default(),
            &ConnectSettings::default(),
        );
        assert_eq!(t.port, 2200);
        assert_eq!(o.host_key_checking, HostKeyChecking::Off);
        assert_eq!(o.known_hosts_files[0], PathBuf::from("/tmp/kh"));
        assert_eq!(o.connect_timeout, Duration::from_secs(3));
        // A silent connection is given up after 2 s x 4.
        assert_eq!(o.keepalive_interval, Duration::from_secs(2));
        assert_eq!(o.keepalive_count_max, 4);
        assert_eq!(o.proxy_jump.as_deref(), Some("bastion"));
        assert_eq!(ignored, vec!["-C".to_string()]);
    }

    #[test]
    fn proxy_jump_from_ssh_config_names_the_bastion_and_args_can_turn_it_off() {
        let settings = ConnectSettings {
            ssh_config: Some(SshConfig::parse(
                "Host jump\n  HostName 10.77.0.11\n  User ops\n  IdentityFile /keys/jump\n\
                 Host db*\n  ProxyJump jump:2222\n",
            )),
            password: Some("secret".into()),
            ..ConnectSettings::default()
        };
        let (t, o, ignored) =
            ssh_settings("db1", &Map::new(), PlayConnection::default(), &settings);
        assert!(ignored.is_empty(), "{ignored:?}");
        assert_eq!(o.proxy_jump.as_deref(), Some("jump:2222"));
        let b = bastion_target(&t, &o, &settings)
            .expect("valid jump")
            .expect("a bastion");
        assert_eq!(
            (b.name.as_str(), b.address.as_str(), b.port, b.user.as_str()),
            ("jump", "10.77.0.11", 2222, "ops")
        );
        assert_eq!(b.private_key, Some(PathBuf::from("/keys/jump")));
        assert_eq!(b.password, None, "the target's password stays the target's");

        let off = vars(json!({"ansible_ssh_common_args": "-o ProxyJump=none"}));
        let (t, o, _) = ssh_settings("db1", &off, PlayConnection::default(), &settings);
        assert!(matches!(bastion_target(&t, &o, &settings), Ok(None)));

        let two = vars(json!({"ansible_ssh_common_args": "-J a,b"}));
        let (t, o, _) = ssh_settings("db1", &two, PlayConnection::default(), &settings);
        assert!(bastion_target(&t, &o, &settings).is_err());
    }

    #[test]
    fn ansible_cfg_remote_user_and_ssh_args_are_the_lowest_defaults() {
        let settings = ConnectSettings {
            config_remote_user: Some("cfguser".into()),
            ssh_args: Some("-C -o Port=2201\n-o ConnectTimeout=4".into()),
            ..ConnectSettings::default()
        };
        let (t, o, ignored) =
            ssh_settings("db1", &Map::new(), PlayConnection::default(), &settings);
        assert_eq!((t.user.as_str(), t.port), ("cfguser", 2201));
        assert_eq!(o.connect_timeout, Duration::from_secs(4));
        assert_eq!(ignored, vec!["-C".to_string()]);
        // -u beats the file; a play's (or task's) remote_user beats -u, as
        // ansible-playbook does; the inventory beats all.
        let flag = ConnectSettings {
            remote_user: Some("flaguser".into()),
            ..settings.clone()
        };
        let (t, _, _) = ssh_settings("db1", &Map::new(), PlayConnection::default(), &flag);
        assert_eq!(t.user, "flaguser");
        let play = PlayConnection {
            connection: None,
            remote_user: Some("playuser"),
            port: None,
        };
        let (t, _, _) = ssh_settings("db1", &Map::new(), play, &settings);
        assert_eq!(t.user, "playuser");
        let (t, _, _) = ssh_settings("db1", &Map::new(), play, &flag);
        assert_eq!(t.user, "playuser");
        let v = vars(json!({"ansible_user": "invuser"}));
        let (t, _, _) = ssh_settings("db1", &v, play, &flag);
        assert_eq!(t.user, "invuser");
        // ssh_args come first on Ansible's ssh command line, so they win over
        // ansible_ssh_common_args as ssh's first value does.
        let v = vars(json!({"ansible_ssh_common_args": "-o Port=2299"}));
        let (t, _, _) = ssh_settings("db1", &v, PlayConnection::default(), &settings);
        assert_eq!(t.port, 2201);
    }

    #[test]
    fn command_line_beats_config_and_localhost_is_local() {
        let settings = ConnectSettings {
            host_key_checking: Some(HostKeyChecking::Strict),
            remote_user: Some("ops".into()),
            ..ConnectSettings::default()
        };
        let v = vars(json!({"ansible_ssh_common_args": "-o StrictHostKeyChecking=no"}));
        let (t, o, _) = ssh_settings("db1", &v, PlayConnection::default(), &settings);
        assert_eq!(o.host_key_checking, HostKeyChecking::Strict);
        assert_eq!(t.user, "ops");
        assert_eq!(
            transport("localhost", &Map::new(), PlayConnection::default()),
            "local"
        );
        assert_eq!(
            transport("db1", &Map::new(), PlayConnection::default()),
            "ssh"
        );
        let play = PlayConnection {
            connection: Some("local"),
            remote_user: None,
            port: None,
        };
        assert_eq!(transport("db1", &Map::new(), play), "local");
    }

    #[test]
    fn port_keyword_sits_between_ansible_port_and_remote_port() {
        let settings = ConnectSettings {
            config_remote_port: Some(2200),
            ..ConnectSettings::default()
        };
        let (t, _, _) = ssh_settings("db1", &Map::new(), PlayConnection::default(), &settings);
        assert_eq!(t.port, 2200, "ansible.cfg remote_port");
        let keyword = PlayConnection {
            port: Some(2201),
            ..PlayConnection::default()
        };
        let (t, _, _) = ssh_settings("db1", &Map::new(), keyword, &settings);
        assert_eq!(t.port, 2201, "the keyword beats ansible.cfg");
        let v = vars(json!({"ansible_port": 2202}));
        let (t, _, _) = ssh_settings("db1", &v, keyword, &settings);
        assert_eq!(t.port, 2202, "the variable beats the keyword");
        let (t, _, _) = ssh_settings("db1", &Map::new(), keyword, &ConnectSettings::default());
        assert_eq!(t.port, 2201);
        assert_ne!(
            session_key("db1", &Map::new(), keyword, &settings),
            session_key("db1", &Map::new(), PlayConnection::default(), &settings),
            "another port is another session"
        );
    }
}
