//! The list of built-in modules, by their short names, and [`Registry`],
//! the module set the engine is given (the built-ins, or those plus a
//! test's own). Ansible's long names (`ansible.builtin.copy`,
//! `ansible.posix.sysctl`) are mapped by the engine.

use crate::builtin;
use crate::module::DynModule;

static MODULES: &[&dyn DynModule] = &[
    &builtin::command::Command,
    &builtin::command::Shell,
    &builtin::command::Raw,
    &builtin::copy::Copy,
    &builtin::file::File,
    &builtin::lineinfile::LineInFile,
    &builtin::blockinfile::BlockInFile,
    &builtin::replace::Replace,
    &builtin::stat::Stat,
    &builtin::find::Find,
    &builtin::slurp::Slurp,
    &builtin::fetch::Fetch,
    &builtin::tempfile::Tempfile,
    &builtin::getent::Getent,
    &builtin::script::Script,
    &builtin::service_facts::ServiceFacts,
    &builtin::package_facts::PackageFacts,
    &builtin::debconf::Debconf,
    &builtin::dpkg_selections::DpkgSelections,
    &builtin::known_hosts::KnownHosts,
    &builtin::git::Git,
    &builtin::pip::Pip,
    &builtin::wait_for_connection::WaitForConnection,
    &builtin::pause::Pause,
    &builtin::wait_for::WaitFor,
    &builtin::user::User,
    &builtin::group::GroupModule,
    &builtin::sysctl::Sysctl,
    &builtin::sysctl_tuning::SysctlTuning,
    &builtin::synchronize::Synchronize,
    &builtin::compose_deploy::ComposeDeploy,
    &builtin::elasticsearch_cluster::ElasticsearchCluster,
    &builtin::authorized_key::AuthorizedKey,
    &builtin::hostname::Hostname,
    &builtin::cron::Cron,
    &builtin::mount::Mount,
    &builtin::systemd::Systemd,
    &builtin::systemd::SystemdService,
    &builtin::systemd::Service,
    &builtin::apt::Apt,
    &builtin::apt::Package,
    &builtin::apt_key::AptKey,
    &builtin::apt_repository::AptRepository,
    &builtin::deb822_repository::Deb822Repository,
    &builtin::docker_install::DockerInstall,
    &builtin::docker_network::DockerNetwork,
    &builtin::docker_volume::DockerVolume,
    &builtin::docker_container::DockerContainer,
    &builtin::docker_image::DockerImage,
    &builtin::docker_info::DockerContainerInfo,
    &builtin::docker_info::DockerImageInfo,
    &builtin::docker_info::DockerHostInfo,
    &builtin::docker_prune::DockerPrune,
    &builtin::docker_login::DockerLogin,
    &builtin::docker_compose_v2::DockerComposeV2,
    &builtin::get_url::GetUrl,
    &builtin::uri::Uri,
    &builtin::unarchive::Unarchive,
    &builtin::reboot::Reboot,
    &builtin::volume_backup::VolumeBackup,
    &builtin::ping::Ping,
    &builtin::async_status::AsyncStatus,
    &builtin::ufw::Ufw,
    &builtin::ini_file::IniFile,
    &builtin::timezone::Timezone,
    &builtin::locale_gen::LocaleGen,
    &builtin::sudoers::Sudoers,
    &builtin::pam_limits::PamLimits,
    &builtin::modprobe::Modprobe,
    &builtin::archive::Archive,
    &builtin::alternatives::Alternatives,
    &builtin::acl::Acl,
    &builtin::at::At,
    &builtin::iptables::Iptables,
];

/// Every built-in module, in a stable order.
pub fn registry() -> &'static [&'static dyn DynModule] {
    MODULES
}

/// A module by short name.
pub fn find(name: &str) -> Option<&'static dyn DynModule> {
    MODULES.iter().copied().find(|m| m.name() == name)
}

/// The modules a run can use, by short name: what the engine is given
/// and asks, instead of knowing modules itself. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    modules: Vec<&'static dyn DynModule>,
}

impl Registry {
    /// Every built-in module.
    pub fn builtin() -> Self {
        Registry {
            modules: MODULES.to_vec(),
        }
    }

    /// This set plus `module`, which replaces one of the same name.
    pub fn with(mut self, module: &'static dyn DynModule) -> Self {
        match self.modules.iter().position(|m| m.name() == module.name()) {
            Some(i) => self.modules[i] = module,
            None => self.modules.push(module),
        }
        self
    }

    /// A module by short name.
    pub fn find(&self, name: &str) -> Option<&'static dyn DynModule> {
        self.modules.iter().copied().find(|m| m.name() == name)
    }

    /// Every module, built-ins first in their stable order.
    pub fn iter(&self) -> impl Iterator<Item = &'static dyn DynModule> + '_ {
        self.modules.iter().copied()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.modules.iter().map(|m| m.name()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_module_is_found_by_name_once() {
        for m in registry() {
            assert_eq!(
                find(m.name()).map(super::super::module::DynModule::name),
                Some(m.name())
            );
            let same = registry().iter().filter(|o| o.name() == m.name()).count();
            assert_eq!(same, 1, "{} registered twice", m.name());
        }
        assert!(find("nope").is_none());
    }

    #[test]
    fn the_builtin_set_is_the_list_and_with_adds_or_replaces() {
        let names = |r: &Registry| {
            r.iter()
                .map(super::super::module::DynModule::name)
                .collect::<Vec<_>>()
        };
        let builtin = Registry::builtin();
        let listed: Vec<_> = registry().iter().map(|m| m.name()).collect();
        assert_eq!(names(&builtin), listed);
        struct Extra;
        impl crate::Module for Extra {
            const NAME: &'static str = "extra";
            type Params = serde_json::Value;
            fn plan(
                &self,
                _: &Self::Params,
                _: &mut dyn crate::Host,
            ) -> Result<crate::Plan, crate::ModuleError> {
                Ok(crate::Plan::empty())
            }
            fn apply(
                &self,
                _: &Self::Params,
                _: crate::Plan,
                _: &mut dyn crate::Host,
            ) -> Result<crate::Outcome, crate::ModuleError> {
                Ok(crate::Outcome::default())
            }
        }
        static EXTRA: Extra = Extra;
        let more = builtin.clone().with(&EXTRA);
        assert_eq!(more.iter().count(), listed.len() + 1);
        assert!(more.find("extra").is_some() && builtin.find("extra").is_none());
        let again = more.with(&EXTRA);
        assert_eq!(
            again.iter().count(),
            listed.len() + 1,
            "replaced, not added"
        );
    }

    #[test]
    fn declared_inputs_reach_the_object_safe_face() {
        let inputs = |name: &str| find(name).map(|m| m.controller_inputs().len());
        assert_eq!(inputs("copy"), Some(1));
        assert_eq!(inputs("unarchive"), Some(1));
        assert_eq!(inputs("compose_deploy"), Some(1));
        assert_eq!(inputs("elasticsearch_cluster"), Some(1));
        assert_eq!(inputs("volume_backup"), Some(1));
        assert_eq!(inputs("fetch"), Some(1));
        assert_eq!(inputs("script"), Some(1));
        assert_eq!(inputs("file"), Some(0));
        let es =
            find("elasticsearch_cluster").map(super::super::module::DynModule::needs_inventory);
        assert_eq!(es, Some(true), "the wrapper keeps the module's own needs");
        let free: Vec<_> = registry()
            .iter()
            .filter(|m| m.free_form())
            .map(|m| m.name())
            .collect();
        assert_eq!(free, ["command", "shell", "raw", "script"]);
    }

    #[test]
    fn typical_parameters_are_accepted() {
        for (name, params) in [
            (
                "command",
                json!({"_raw_params": "ls -l", "chdir": "/tmp", "creates": "/x"}),
            ),
            (
                "shell",
                json!({"cmd": "ls | wc -l", "executable": "/bin/bash"}),
            ),
            ("raw", json!({"_raw_params": "uptime"})),
            ("async_status", json!({"jid": "j1.2", "mode": "cleanup"})),
            (
                "copy",
                json!({"dest": "/x", "content": "y", "mode": "0644", "backup": "yes"}),
            ),
            (
                "file",
                json!({"path": "/x", "state": "directory", "mode": 493, "recurse": true}),
            ),
            (
                "lineinfile",
                json!({"dest": "/x", "regexp": "^a", "line": "a=1", "create": "true"}),
            ),
            (
                "blockinfile",
                json!({"path": "/x", "block": "a", "marker": "# {mark}"}),
            ),
            ("stat", json!({"path": "/x", "get_checksum": "no"})),
            (
                "wait_for",
                json!({"port": "22", "timeout": "10", "state": "started"}),
            ),
            (
                "user",
                json!({"name": "u", "groups": "a,b", "append": "yes", "createhome": "no"}),
            ),
            ("group", json!({"name": "g", "gid": "1001", "system": true})),
            (
                "sysctl",
                json!({"name": "net.core.somaxconn", "value": 1024, "reload": "no"}),
            ),
            (
                "sysctl_tuning",
                json!({"profiles": ["network", "docker"], "params": {"net.ipv4.tcp_fin_timeout": "20", "vm.overcommit_memory": 1}, "limits": true, "only_raise": "no", "priority": "70", "name": "web"}),
            ),
            (
                "compose_deploy",
                json!({"project": "shop", "dir": "/opt/deploy/prod", "files": ["compose/app.yml.j2"], "env": {"IMAGE_TAG": "v2", "PORT": 8080}, "pull": "never", "remove_orphans": "yes", "prune": true, "health": {"url": "http://127.0.0.1:${PORT}/health", "status": "200", "retries": 20, "delay": 0.5, "containers": true}, "strategy": "blue_green", "colors": {"blue": {"PORT": 8081}, "green": {"PORT": 8082}}, "switch": {"file": "/etc/nginx/upstream.conf", "blue": "server 127.0.0.1:8081;", "green": "server 127.0.0.1:8082;", "command": "nginx -s reload", "drain": 1}}),
            ),
            (
                "elasticsearch_cluster",
                json!({"cluster_name": "logs", "version": "8.11.1", "masters": "es_masters", "data": "es_data", "url": "http://x/es.tar.gz", "checksum": "sha512:ab", "heap": "2g", "http_port": "9200", "memory_lock": "yes", "max_map_count_read_only": "warn", "wait_for_status": "yellow", "wait_timeout": "120", "settings": {"xpack.security.enabled": false}}),
            ),
            (
                "authorized_key",
                json!({"user": "u", "key": "ssh-ed25519 AAAA c", "exclusive": "yes"}),
            ),
            ("hostname", json!({"name": "web-1", "use": "debian"})),
            (
                "cron",
                json!({"name": "n", "job": "ls", "minute": 0, "dow": "1-5"}),
            ),
            (
                "mount",
                json!({"name": "/mnt/a", "src": "tmpfs", "fstype": "tmpfs", "state": "mounted", "passno": 2}),
            ),
            (
                "apt",
                json!({"name": ["nginx", "curl=7.88"], "update_cache": "yes", "cache_valid_time": 3600, "install_recommends": "no"}),
            ),
            ("package", json!({"name": "tree", "state": "present"})),
            (
                "apt_key",
                json!({"url": "https://example.invalid/key.asc", "keyring": "/etc/apt/keyrings/x.asc"}),
            ),
            (
                "apt_repository",
                json!({"repo": "deb http://x/ ./", "filename": "x", "update_cache": "no"}),
            ),
            (
                "systemd",
                json!({"name": "nginx", "state": "restarted", "enabled": "yes", "daemon_reload": true}),
            ),
            ("systemd_service", json!({"unit": "x", "masked": false})),
            (
                "service",
                json!({"name": "cron", "state": "started", "enabled": true}),
            ),
            (
                "get_url",
                json!({"url": "http://x/a", "dest": "/tmp/a", "checksum": "sha256:ab", "mode": "0644", "timeout": "30"}),
            ),
            (
                "uri",
                json!({"url": "http://x/", "method": "POST", "body_format": "json", "body": {"a": 1}, "status_code": [200, 201]}),
            ),
            (
                "unarchive",
                json!({"src": "/tmp/a.tgz", "dest": "/opt", "remote_src": "yes", "creates": "/opt/a"}),
            ),
            ("reboot", json!({"reboot_timeout": "300", "msg": "bye"})),
            (
                "deb822_repository",
                json!({"name": "x", "uris": ["http://x/"], "suites": "stable", "components": "main", "enabled": "yes"}),
            ),
            (
                "docker_network",
                json!({"name": "n", "ipam_config": [{"subnet": "172.30.0.0/24"}], "connected": "web", "appends": "yes", "labels": {"a": 1}}),
            ),
            (
                "docker_volume",
                json!({"name": "v", "driver_options": {"type": "tmpfs"}, "recreate": "options-changed"}),
            ),
            (
                "docker_container",
                json!({"name": "web", "image": "nginx", "ports": ["8080:80"], "env": {"A": "1"}, "volumes": "/a:/b:ro", "restart_policy": "always", "pull": "yes", "memory": "1g", "cpus": "1.5", "healthcheck": {"test": "true", "retries": "3"}, "comparisons": {"*": "strict"}}),
            ),
            (
                "docker_image",
                json!({"name": "app", "tag": "v2", "source": "build", "build": {"path": "/opt/app", "args": {"V": 2}, "nocache": "yes"}, "archive_path": "/tmp/app.tar", "force_source": "true"}),
            ),
            (
                "docker_prune",
                json!({"containers": "yes", "images": true, "images_filters": {"dangling": false}, "builder_cache": true}),
            ),
            (
                "docker_login",
                json!({"registry": "localhost:5000", "username": "u", "password": "p", "reauthorize": "no"}),
            ),
            (
                "docker_compose_v2",
                json!({"project_src": "/opt/shop", "pull": "always", "build": "never", "recreate": "auto", "remove_orphans": "yes", "services": "web", "state": "present"}),
            ),
            ("docker_container_info", json!({"name": "web"})),
            ("docker_image_info", json!({"name": ["nginx", "redis:7"]})),
            (
                "docker_host_info",
                json!({"containers": "yes", "images": true, "disk_usage": false}),
            ),
            (
                "docker_install",
                json!({"source": "distro", "compose": "yes", "users": "deploy, ci", "daemon": {"log-opts": {"max-size": "50m"}, "iptables": false}, "registry_mirrors": ["http://mirror:5000"], "insecure_registries": "mirror:5000", "metrics_addr": "127.0.0.1:9323", "min_version": "20.10", "restart_timeout": "30"}),
            ),
        ] {
            let m = find(name).unwrap_or_else(|| panic!("{name} not registered"));
            assert_eq!(m.check_params(&params), Ok(()), "{name}");
        }
    }

    #[test]
    fn typical_parameters_of_the_more_builtins_are_accepted() {
        for (name, params) in [
            (
                "ini_file",
                json!({"dest": "/etc/app.ini", "section": "db", "option": "port", "value": 5432, "no_extra_spaces": "yes", "mode": "0600"}),
            ),
            ("timezone", json!({"name": "Europe/Paris"})),
            (
                "locale_gen",
                json!({"name": "de_DE.UTF-8", "state": "present"}),
            ),
            (
                "sudoers",
                json!({"name": "deploy", "user": "deploy", "commands": ["/bin/ls", "/bin/cat"], "nopassword": "no", "runas": "root"}),
            ),
            (
                "pam_limits",
                json!({"domain": "*", "limit_type": "-", "limit_item": "nofile", "value": 65535, "use_max": "yes"}),
            ),
            (
                "modprobe",
                json!({"name": "br_netfilter", "persistent": "present", "params": "a=1"}),
            ),
            (
                "ufw",
                json!({"rule": "allow", "port": 443, "proto": "tcp", "src": "10.0.0.0/8", "log": "yes", "comment": "https"}),
            ),
            (
                "replace",
                json!({"dest": "/x", "regexp": "^a", "replace": "b", "after": "x", "backup": "yes"}),
            ),
            ("slurp", json!({"path": "/etc/hostname"})),
            (
                "tempfile",
                json!({"state": "directory", "path": "/var/tmp", "prefix": "x.", "suffix": ".d"}),
            ),
            (
                "getent",
                json!({"database": "passwd", "key": "root", "fail_key": "no"}),
            ),
            (
                "script",
                json!({"_raw_params": "files/x.sh --fast", "creates": "/x", "chdir": "/tmp", "executable": "/bin/bash"}),
            ),
            ("service_facts", json!({})),
            ("pause", json!({"minutes": "1", "echo": "no"})),
            (
                "wait_for_connection",
                json!({"delay": "5", "timeout": 300, "sleep": 2, "connect_timeout": 10}),
            ),
            (
                "pip",
                json!({"name": ["flask>=2", "<3"], "virtualenv": "/srv/venv", "virtualenv_command": "python3 -m venv", "state": "present", "extra_args": "--no-index"}),
            ),
            (
                "git",
                json!({"repo": "https://x/a.git", "dest": "/srv/a", "version": "v1", "depth": "1", "force": "yes", "accept_newhostkey": true}),
            ),
            (
                "known_hosts",
                json!({"host": "git.example.com", "key": "git.example.com ssh-ed25519 AAAA", "hash_host": "yes", "path": "/etc/ssh/ssh_known_hosts"}),
            ),
            (
                "debconf",
                json!({"pkg": "tzdata", "question": "tzdata/Areas", "vtype": "select", "value": "Europe", "unseen": "no"}),
            ),
            (
                "dpkg_selections",
                json!({"name": "docker.io", "selection": "hold"}),
            ),
            (
                "package_facts",
                json!({"manager": ["auto"], "strategy": "first"}),
            ),
            (
                "fetch",
                json!({"src": "/etc/hostname", "dest": "out/", "flat": "no", "fail_on_missing": "no"}),
            ),
            (
                "find",
                json!({"paths": "/x,/y", "patterns": ["*.log"], "age": "2d", "recurse": "yes", "file_type": "any"}),
            ),
        ] {
            let m = find(name).unwrap_or_else(|| panic!("{name} not registered"));
            assert_eq!(m.check_params(&params), Ok(()), "{name}");
        }
    }

    #[test]
    fn bad_values_name_their_parameter() {
        let file =
            find("file").map(|m| m.check_params(&json!({"path": "/x", "state": "dirctory"})));
        let Some(Err(e)) = file else {
            panic!("{file:?}")
        };
        assert_eq!(e.field(), Some("state"));
        let copy = find("copy").map(|m| m.check_params(&json!({"dest": "/x", "mode": "rwx"})));
        let Some(Err(e)) = copy else {
            panic!("{copy:?}")
        };
        assert_eq!(e.field(), Some("mode"));
    }
}
