//! `compose_deploy` on a real Docker engine, through the example playbook
//! `playbooks/compose-deploy.yml` with an inventory of the test's own over
//! `herd-09` (the fleet's compose host) and `-e` overrides.
//!
//! There is no registry: the app images (`herdtest/app:v1`, `:v2`, and
//! `:broken`, whose `/health` is missing) are built on the host from
//! `herd/busybox:1`, so `pull: missing` never has to reach a registry.
//!
//! In place: deploy v1, a second run changes nothing, check mode shows v2
//! without deploying it, v2 rolls forward, `broken` fails its health gate
//! and v2 serves again afterwards, `absent` removes it. Blue-green: a small
//! front (busybox httpd with a CGI that forwards to the address in the
//! switch file) is probed every 50 ms on the host while v1 (blue) gives way
//! to v2 (green); not one probe may fail. A broken version is never
//! switched to.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::fleet::{fleet, Fleet};
use crate::support::Herd;

const HOST: &str = "herd-09";

/// Builds the three app tags; v1 and v2 serve /version and /health.
const BUILD_IMAGES: &str = r#"set -eu
for v in v1 v2 broken; do
  d=$(mktemp -d); mkdir -p "$d/www"
  echo "$v" > "$d/www/version"
  [ "$v" = broken ] || echo ok > "$d/www/health"
  printf 'FROM herd/busybox:1\nCOPY www /www\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n' > "$d/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t herdtest/app:$v "$d" >/dev/null
  rm -rf "$d"
done
"#;

/// The front of the blue-green deploy: each request goes to the
/// `host:port` the switch file names, as an nginx upstream would.
const START_FRONT: &str = r#"set -eu
mkdir -p /opt/herdtest-front/cgi-bin /opt/deploy/prod
cat > /opt/herdtest-front/cgi-bin/app <<'EOS'
#!/bin/sh
up=$(cat /opt/deploy/prod/upstream 2>/dev/null)
resp=$(printf 'GET /version HTTP/1.0\r\n\r\n' | nc -w 2 "${up%:*}" "${up##*:}" 2>/dev/null)
case "$resp" in
  "HTTP/1."?" 200 "*) printf 'Content-Type: text/plain\r\n\r\n%s\n' "$(printf '%s\n' "$resp" | tail -n 1)" ;;
  *) printf 'Status: 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\nno answer from %s\n' "$up" ;;
esac
EOS
chmod 755 /opt/herdtest-front/cgi-bin/app
docker rm -f herdtest-front >/dev/null 2>&1 || true
docker run -d --name herdtest-front --init --network host \
  -v /opt/herdtest-front:/front:ro -v /opt/deploy/prod:/opt/deploy/prod:ro \
  herd/busybox:1 httpd -f -p 127.0.0.1:8090 -h /front >/dev/null
"#;

/// Probes the front every 50 ms (at most 1200 times) until the stop file
/// appears; one line per probe: the body and the HTTP status.
const START_PROBE: &str = r#"rm -f /tmp/herdtest-probe.log /tmp/herdtest-probe.stop
nohup sh -c 'i=0; while [ $i -lt 1200 ] && [ ! -e /tmp/herdtest-probe.stop ]; do i=$((i+1)); r=$(curl -s -m 2 -w " %{http_code}" http://127.0.0.1:8090/cgi-bin/app | tr "\n" " ") || r="$r curl-failed"; echo "$r"; sleep 0.05; done; echo done' >/tmp/herdtest-probe.log 2>&1 </dev/null &
echo $! > /tmp/herdtest-probe.pid
"#;

const CLEANUP: &str = "docker rm -f herdtest-front >/dev/null 2>&1; \
    touch /tmp/herdtest-probe.stop; \
    for p in shop shop-blue shop-green; do docker compose -p $p down >/dev/null 2>&1; done; \
    rm -rf /opt/deploy/prod /opt/herdtest-front; true";

/// Takes the projects and the front away when dropped, even on failure.
struct Cleanup<'a>(&'a Fleet);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.ssh(HOST, CLEANUP);
    }
}

/// A failed run: one failed task on the host; its output.
fn fails(deploy: &Herd, vars: &Value) -> String {
    let r = deploy.vars(vars).run();
    assert_ne!(r.code(), 0, "{}", r.stdout());
    assert_eq!(r.stat(HOST, "failed"), 1, "{}", r.stdout());
    r.stdout()
}

/// What the app answers on a port of the host.
fn version(f: &Fleet, port: u16) -> String {
    f.ssh_ok(
        HOST,
        &format!("curl -sf -m 5 http://127.0.0.1:{port}/version"),
    )
    .trim()
    .to_string()
}

/// `service image state` of a project's containers, sorted.
fn containers(f: &Fleet, project: &str) -> Vec<String> {
    let out = f.ssh_ok(
        HOST,
        &format!(
            "docker ps -a --filter label=com.docker.compose.project={project} \
             --format '{{{{.Label \"com.docker.compose.service\"}}}} {{{{.Image}}}} {{{{.State}}}}'"
        ),
    );
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

// One fleet scenario, step by step, against hosts built once: tests are
// exempt from the 150-line limit.
#[allow(clippy::too_many_lines)]
#[test]
fn compose_deploy_example_rolls_forward_rolls_back_and_switches_blue_green() {
    let f = fleet();
    let _lock = f.lock(HOST);
    f.ensure_docker(HOST);
    f.ssh_ok(HOST, CLEANUP);
    let _cleanup = Cleanup(f);
    f.ssh_ok(HOST, BUILD_IMAGES);
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = f
        .inventory()
        .group("compose")
        .root(HOST, HOST, "")
        .write(dir.path(), "inventory.ini");
    let deploy = f
        .herd()
        .example("playbooks/compose-deploy.yml")
        .inventory(&inventory);

    // A two-service project from a local image; a second run changes nothing.
    deploy.vars(json!({"app_tag": "v1"})).converge(HOST, 1);
    assert_eq!(version(f, 8081), "v1");
    assert_eq!(
        containers(f, "shop"),
        [
            "web herdtest/app:v1 running",
            "worker herdtest/app:v1 running"
        ]
    );
    let compose = f.ssh_ok(HOST, "cat /opt/deploy/prod/app.yml");
    assert!(
        compose.contains("image: \"herdtest/app:${IMAGE_TAG}\"")
            && compose.contains("$${HOSTNAME} of shop"),
        "the template's own variables are rendered, compose's pass through:\n{compose}"
    );
    assert_eq!(
        f.ssh_ok(
            HOST,
            "stat -c %a /opt/deploy/prod/.env; grep -v '^#' /opt/deploy/prod/.env"
        ),
        "600\nIMAGE_TAG=v1\nWEB_PORT=8081\n"
    );
    deploy.vars(json!({"app_tag": "v1"})).converge(HOST, 0);

    // Check mode shows the .env diff and the services to recreate, and
    // deploys nothing.
    let r = deploy
        .vars(json!({"app_tag": "v2"}))
        .check()
        .diff()
        .converge(HOST, 1);
    let out = r.stdout();
    assert!(out.contains(r#"IMAGE_TAG=v2\nWEB_PORT=8081\n"}"#), "{out}");
    assert!(
        out.contains("web: recreate (configuration changed)"),
        "{out}"
    );
    assert_eq!(version(f, 8081), "v1");

    // A new tag rolls forward, both services.
    deploy.vars(json!({"app_tag": "v2"})).converge(HOST, 1);
    assert_eq!(version(f, 8081), "v2");
    assert_eq!(
        containers(f, "shop"),
        [
            "web herdtest/app:v2 running",
            "worker herdtest/app:v2 running"
        ]
    );

    // A broken version fails its health gate; v2 is back and serving.
    let out = fails(&deploy, &json!({"app_tag": "broken"}));
    assert!(
        out.contains(
            "the health gate failed: http://127.0.0.1:8081/health answered 404, expected 200"
        ) && out.contains("the previous version is running and healthy again"),
        "{out}"
    );
    assert_eq!(version(f, 8081), "v2");
    assert_eq!(
        containers(f, "shop"),
        [
            "web herdtest/app:v2 running",
            "worker herdtest/app:v2 running"
        ]
    );
    assert!(f
        .ssh_ok(HOST, "cat /opt/deploy/prod/.env")
        .contains("IMAGE_TAG=v2\n"));
    // The rollback restored everything: v2 again is nothing to do.
    deploy.vars(json!({"app_tag": "v2"})).converge(HOST, 0);

    // absent stops and removes the project and its files, not the volumes.
    let absent = json!({"app_state": "absent"});
    deploy.vars(&absent).converge(HOST, 1);
    assert!(containers(f, "shop").is_empty());
    assert_eq!(f.ssh_ok(HOST, "ls -A /opt/deploy/prod"), "");
    deploy.vars(&absent).converge(HOST, 0);

    // Blue-green behind a front that follows the switch file.
    f.ssh_ok(HOST, START_FRONT);
    let bg = |tag: &str| json!({"app_strategy": "blue_green", "app_tag": tag});
    deploy.vars(bg("v1")).converge(HOST, 1);
    assert_eq!(
        f.ssh_ok(
            HOST,
            "cat /opt/deploy/prod/upstream /opt/deploy/prod/.herd-live"
        ),
        "127.0.0.1:8081\nblue\n"
    );
    assert_eq!(
        f.ssh_ok(HOST, "curl -s -m 5 http://127.0.0.1:8090/cgi-bin/app"),
        "v1\n"
    );
    deploy.vars(bg("v1")).converge(HOST, 0);

    f.ssh_ok(HOST, START_PROBE);
    std::thread::sleep(Duration::from_millis(1000));
    deploy.vars(bg("v2")).converge(HOST, 1);
    std::thread::sleep(Duration::from_millis(1000));
    let log = f.ssh_ok(
        HOST,
        "touch /tmp/herdtest-probe.stop; \
         for i in $(seq 50); do grep -q '^done$' /tmp/herdtest-probe.log && break; sleep 0.1; done; \
         cat /tmp/herdtest-probe.log",
    );
    let probes: Vec<&str> = log.lines().filter(|l| *l != "done").collect();
    let bad: Vec<&&str> = probes.iter().filter(|l| !l.ends_with(" 200")).collect();
    assert!(
        bad.is_empty(),
        "probes that failed during the switch: {bad:?}"
    );
    assert!(probes.len() >= 20, "too few probes: {log}");
    let first_v2 = probes.iter().position(|l| l.starts_with("v2 "));
    let last_v1 = probes.iter().rposition(|l| l.starts_with("v1 "));
    assert!(
        matches!((last_v1, first_v2), (Some(a), Some(b)) if a < b),
        "the front went from v1 to v2 once: {log}"
    );
    assert_eq!(
        f.ssh_ok(
            HOST,
            "cat /opt/deploy/prod/upstream /opt/deploy/prod/.herd-live"
        ),
        "127.0.0.1:8082\ngreen\n"
    );
    assert_eq!(
        containers(f, "shop-green"),
        [
            "web herdtest/app:v2 running",
            "worker herdtest/app:v2 running"
        ]
    );
    assert!(
        containers(f, "shop-blue")
            .iter()
            .all(|c| c.ends_with(" exited")),
        "the old color is stopped: {:?}",
        containers(f, "shop-blue")
    );
    deploy.vars(bg("v2")).converge(HOST, 0);

    // A broken version is never switched to; green keeps serving v2.
    let out = fails(&deploy, &bg("broken"));
    assert!(
        out.contains("the health gate of shop-blue failed")
            && out.contains("shop-green still serves, nothing was switched"),
        "{out}"
    );
    assert_eq!(
        f.ssh_ok(HOST, "curl -s -m 5 http://127.0.0.1:8090/cgi-bin/app"),
        "v2\n"
    );
    assert!(containers(f, "shop-blue").is_empty());
    deploy.vars(bg("v2")).converge(HOST, 0);

    deploy
        .vars(json!({"app_strategy": "blue_green", "app_state": "absent"}))
        .converge(HOST, 1);
    assert!(containers(f, "shop-green").is_empty());
}
