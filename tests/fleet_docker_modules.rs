//! The `community.docker` modules on a real dockerd: `docker_network`,
//! `docker_volume`, `docker_container`, `docker_image`, `docker_login`,
//! `docker_prune`, the info modules and `docker_compose_v2` through
//! `herd run`, on `herd-30`
//! (the fleet's host for these modules), with names of their own
//! (`herdtest-dm-*`) cleaned before and after, even when an assertion
//! fails. The image is `herd/busybox:1`, built on the host (no registry).
//!
//! A first run makes the network, the volume and a container using both
//! (ports, env and env_file, labels, health check, log options, restart
//! policy; the network task says `appends: true`, which keeps containers
//! it does not list connected); a
//! second run changes nothing; check mode of a changed env
//! changes nothing; the real run recreates the container; `stopped` stops
//! it; `absent` removes all three.
//!
//! With Debian's `docker-registry` on the same host (127.0.0.1:5000): an
//! image built, pushed and saved, a login, the info modules; a container
//! whose image is pulled when missing, and with `pull: always` recreated
//! only when the registry has a new image; a prune limited by label; a
//! compose project from an inline definition, up and down.

use crate::support::fleet::{fleet, Fleet};

const HOST: &str = "herd-30";

const CLEANUP: &str = "docker rm -f herdtest-dm-web >/dev/null 2>&1; \
    docker network rm herdtest-dm-net >/dev/null 2>&1; \
    docker volume rm -f herdtest-dm-vol >/dev/null 2>&1; rm -f /etc/herdtest-dm.env; true";

struct Cleanup<'a>(&'a Fleet);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.ssh(HOST, CLEANUP);
    }
}

fn tasks(tz: &str, state: &str) -> String {
    format!(
        r#"    - name: network
      community.docker.docker_network:
        name: herdtest-dm-net
        appends: true
        ipam_config:
          - subnet: 172.31.77.0/24
        labels:
          app: shop
    - name: volume
      docker_volume:
        name: herdtest-dm-vol
    - name: env file
      copy:
        dest: /etc/herdtest-dm.env
        content: "FROM_FILE=1\n"
    - name: web
      community.docker.docker_container:
        name: herdtest-dm-web
        image: herd/busybox:1
        state: {state}
        command: httpd -f -p 8080 -h /www
        init: true
        env:
          TZ: "{tz}"
        env_file: /etc/herdtest-dm.env
        published_ports: ["127.0.0.1:18080:8080"]
        volumes: ["herdtest-dm-vol:/www"]
        networks:
          - name: herdtest-dm-net
            aliases: [web]
        restart_policy: unless-stopped
        labels:
          app: shop
        healthcheck:
          test: ["CMD", "true"]
          interval: 5s
          retries: 3
        log_driver: json-file
        log_options:
          max-size: 1m
        stop_timeout: 5
      register: web
    - name: check
      assert:
        that:
          - web.container.State.Running == {running}
          - web.container.Config.Labels.app == 'shop'
          - web.container.HostConfig.NetworkMode == 'herdtest-dm-net'
"#,
        running = state == "started",
    )
}

fn inspect(f: &Fleet, format: &str) -> String {
    f.ssh_ok(
        HOST,
        &format!("docker inspect -f '{format}' herdtest-dm-web"),
    )
    .trim()
    .to_string()
}

#[test]
fn network_volume_and_container_converge_change_and_go() {
    let f = fleet();
    f.ensure_docker(HOST);
    f.ssh_ok(HOST, CLEANUP);
    let _cleanup = Cleanup(f);
    let dir = tempfile::tempdir().expect("tempdir");

    let up = f.play(dir.path(), "up.yml", HOST, &tasks("UTC", "started"));
    up.converge(HOST, 4);
    let id = inspect(f, "{{.Id}}");
    assert_eq!(inspect(f, "{{.State.Running}}"), "true");
    let env = inspect(f, "{{json .Config.Env}}");
    assert!(
        env.contains("TZ=UTC") && env.contains("FROM_FILE=1"),
        "{env}"
    );
    assert_eq!(
        inspect(
            f,
            "{{(index (index .HostConfig.PortBindings \"8080/tcp\") 0).HostPort}}"
        ),
        "18080"
    );
    assert_eq!(
        f.ssh_ok(
            HOST,
            "docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' herdtest-dm-net"
        )
        .trim(),
        "172.31.77.0/24"
    );
    up.converge(HOST, 0);
    assert_eq!(
        inspect(f, "{{.Id}}"),
        id,
        "a second run keeps the container"
    );

    let changed = f.play(
        dir.path(),
        "changed.yml",
        HOST,
        &tasks("Europe/Paris", "started"),
    );
    changed.check().converge(HOST, 1);
    assert_eq!(inspect(f, "{{.Id}}"), id, "check mode keeps the container");
    changed.converge(HOST, 1);
    assert_ne!(inspect(f, "{{.Id}}"), id, "a changed env recreates it");
    assert!(inspect(f, "{{json .Config.Env}}").contains("TZ=Europe/Paris"));
    assert_eq!(inspect(f, "{{.State.Running}}"), "true");
    changed.converge(HOST, 0);

    let stopped = f.play(
        dir.path(),
        "stopped.yml",
        HOST,
        &tasks("Europe/Paris", "stopped"),
    );
    stopped.converge(HOST, 1);
    assert_eq!(inspect(f, "{{.State.Running}}"), "false");
    stopped.converge(HOST, 0);

    let down = f.play(
        dir.path(),
        "down.yml",
        HOST,
        "    - docker_container:\n        name: herdtest-dm-web\n        state: absent\n\
         \x20   - community.docker.docker_network:\n        name: herdtest-dm-net\n        state: absent\n\
         \x20   - community.docker.docker_volume:\n        name: herdtest-dm-vol\n        state: absent\n",
    );
    down.converge(HOST, 3);
    down.converge(HOST, 0);
    assert_eq!(
        f.ssh_ok(HOST, "docker ps -aq -f name=herdtest-dm-web; docker network ls -q -f name=herdtest-dm-net; docker volume ls -q -f name=herdtest-dm-vol").trim(),
        ""
    );
}

const REGISTRY_CLEANUP: &str = "docker rm -f herdtest-dm-pulled herdtest-dm-dead >/dev/null 2>&1; \
    docker compose -p herdtest-dm-compose down >/dev/null 2>&1; \
    docker rmi -f localhost:5000/herdtest/app:1 >/dev/null 2>&1; \
    rm -rf /opt/herdtest-dm-app /tmp/herdtest-dm-app.tar /tmp/herdtest-dm-docker; true";

struct RegistryCleanup<'a>(&'a Fleet);

impl Drop for RegistryCleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.ssh(HOST, REGISTRY_CLEANUP);
    }
}

/// Debian's docker-registry on the host, answering on 127.0.0.1:5000
/// (dockerd trusts a registry on localhost without TLS). Debian's config
/// asks for an htpasswd file of bcrypt hashes, which nothing on the host
/// can make: the test's config has no auth, so any login is accepted.
const START_REGISTRY: &str = r#"set -eu
command -v docker-registry >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null 2>&1
cat > /etc/docker/registry/config.yml <<'EOC'
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
http:
  addr: 127.0.0.1:5000
EOC
systemctl restart docker-registry
for i in $(seq 30); do curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1 && break; sleep 1; done
curl -fsS http://127.0.0.1:5000/v2/ >/dev/null
"#;

/// The app image's build context: `VERSION` in /version.
fn context(version: &str) -> String {
    format!(
        "set -e; mkdir -p /opt/herdtest-dm-app; echo {version} > /opt/herdtest-dm-app/version; \
         printf 'FROM herd/busybox:1\\nCOPY version /version\\nCMD [\"sleep\", \"100000\"]\\n' > /opt/herdtest-dm-app/Dockerfile"
    )
}

#[allow(clippy::too_many_lines)]
#[test]
fn images_registry_login_prune_info_and_compose() {
    let f = fleet();
    f.ensure_docker(HOST);
    f.ssh_ok(HOST, START_REGISTRY);
    f.ssh_ok(HOST, REGISTRY_CLEANUP);
    let _cleanup = RegistryCleanup(f);
    let dir = tempfile::tempdir().expect("tempdir");
    f.ssh_ok(HOST, &context("1"));

    // Build, push, save; log in; inspect.
    let build = f.play(
        dir.path(),
        "build.yml",
        HOST,
        r#"    - name: build
      community.docker.docker_image:
        name: localhost:5000/herdtest/app
        tag: "1"
        source: build
        build:
          path: /opt/herdtest-dm-app
        push: true
        archive_path: /tmp/herdtest-dm-app.tar
    - name: login
      community.docker.docker_login:
        registry_url: localhost:5000
        username: herdtest
        password: secret
        config_path: /tmp/herdtest-dm-docker/config.json
      no_log: true
    - name: info
      community.docker.docker_image_info:
        name: localhost:5000/herdtest/app:1
      register: info
    - name: host
      community.docker.docker_host_info:
        containers: true
      register: host
    - assert:
        that:
          - info.images | length == 1
          - host.can_talk_to_docker
          - host.host_info.ServerVersion is defined
"#,
    );
    build.converge(HOST, 2);
    build.converge(HOST, 0);
    assert!(f
        .ssh_ok(
            HOST,
            "curl -fsS http://127.0.0.1:5000/v2/herdtest/app/tags/list"
        )
        .contains("\"1\""));
    assert!(f
        .ssh_ok(HOST, "tar -tf /tmp/herdtest-dm-app.tar")
        .contains("manifest.json"));

    // Pulled by the container task when missing; `pull: always` changes
    // only when the registry's image is new.
    f.ssh_ok(HOST, "docker rmi localhost:5000/herdtest/app:1 >/dev/null");
    let run = f.play(
        dir.path(),
        "pull.yml",
        HOST,
        "    - name: pulled\n      community.docker.docker_container:\n        name: herdtest-dm-pulled\n\
         \x20       image: localhost:5000/herdtest/app:1\n        init: true\n        pull: always\n",
    );
    run.converge(HOST, 1);
    run.converge(HOST, 0);
    let id = f.ssh_ok(HOST, "docker inspect -f '{{.Image}}' herdtest-dm-pulled");
    f.ssh_ok(
        HOST,
        &format!(
            "{}; DOCKER_BUILDKIT=0 docker build -q -t localhost:5000/herdtest/app:1 /opt/herdtest-dm-app >/dev/null \
             && docker push localhost:5000/herdtest/app:1 >/dev/null && docker rmi localhost:5000/herdtest/app:1 >/dev/null",
            context("2")
        ),
    );
    run.converge(HOST, 1);
    assert_ne!(
        f.ssh_ok(HOST, "docker inspect -f '{{.Image}}' herdtest-dm-pulled"),
        id,
        "the new image was pulled and the container recreated"
    );
    assert_eq!(
        f.ssh_ok(HOST, "docker exec herdtest-dm-pulled cat /version")
            .trim(),
        "2"
    );

    // Prune only what carries the test's label.
    f.ssh_ok(
        HOST,
        "docker create --name herdtest-dm-dead --label herdtest-dm-prune=1 herd/busybox:1 >/dev/null",
    );
    let prune_task = "    - community.docker.docker_prune:\n        containers: true\n        containers_filters:\n\
         \x20         label: herdtest-dm-prune=1\n      register: pruned\n";
    let check = f.play(dir.path(), "prune-check.yml", HOST, prune_task);
    check.check().run().expect_code(0);
    assert!(
        !f.ssh_ok(HOST, "docker ps -aq -f name=herdtest-dm-dead")
            .trim()
            .is_empty(),
        "check mode skips the prune"
    );
    let prune = f.play(
        dir.path(),
        "prune.yml",
        HOST,
        &format!("{prune_task}    - assert:\n        that: pruned.containers | length == 1\n"),
    );
    prune.converge(HOST, 1);
    assert!(f
        .ssh_ok(HOST, "docker ps -aq -f name=herdtest-dm-dead")
        .trim()
        .is_empty());

    // A compose project from an inline definition.
    let compose = |state: &str| {
        format!(
            "    - community.docker.docker_compose_v2:\n        project_name: herdtest-dm-compose\n        state: {state}\n\
             \x20       definition:\n          services:\n            app:\n              image: herd/busybox:1\n\
             \x20             command: [sleep, \"100000\"]\n              init: true\n      register: c\n"
        )
    };
    let up = f.play(dir.path(), "compose-up.yml", HOST, &compose("present"));
    up.check().converge(HOST, 1);
    assert!(f
        .ssh_ok(HOST, "docker ps -q -f name=herdtest-dm-compose")
        .trim()
        .is_empty());
    up.converge(HOST, 1);
    assert!(!f
        .ssh_ok(HOST, "docker ps -q -f name=herdtest-dm-compose")
        .trim()
        .is_empty());
    up.converge(HOST, 0);
    let down = f.play(dir.path(), "compose-down.yml", HOST, &compose("absent"));
    down.converge(HOST, 1);
    down.converge(HOST, 0);
}
