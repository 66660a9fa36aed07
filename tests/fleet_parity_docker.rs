//! The community.docker parity playbook (`tests/fixtures/parity/docker`)
//! under ansible-playbook on `herd-49` and under herd on `herd-50`, each
//! with its own dockerd (Docker from [`Fleet::ensure_docker`], Debian's
//! docker-registry on 127.0.0.1:5000, python3-requests for the
//! collection's modules): a first run, a second and a `--check` run
//! change as many tasks with both tools, and leave the same state: the
//! registered results the playbook writes under `/root/parity`, the
//! docker config of `docker_login`, and what docker itself lists
//! (containers with their image and state, the `docker inspect` fields
//! the playbook sets, networks, volumes, images by tag), written under
//! `/root/parity/docker-state` after each run without ids or timestamps.

use crate::support::fleet::{fleet, Fleet};
use crate::support::parity::Parity;
use crate::support::repo;

/// Registry, requests, the build context; nothing of a previous run.
const PREPARE: &str = r#"set -eu
export DEBIAN_FRONTEND=noninteractive
dpkg -s python3-requests python3-yaml docker-registry >/dev/null 2>&1 || {
  apt-get update -qq && timeout 300 apt-get install -y -qq python3-requests python3-yaml docker-registry >/dev/null 2>&1
}
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
docker rm -f parity-web parity-stopped parity-gone parity-re parity-prune >/dev/null 2>&1 || true
docker compose -p parity-compose down >/dev/null 2>&1 || true
docker network rm parity-net >/dev/null 2>&1 || true
docker volume rm -f parity-vol >/dev/null 2>&1 || true
docker rmi -f parity/app:1 parity/export:1 localhost:5000/parity/app:1 >/dev/null 2>&1 || true
rm -rf /root/parity /root/parity-ctx /root/parity-images /root/parity-bind
mkdir -p /root/parity-ctx /root/parity-images
echo parity > /root/parity-ctx/version
printf 'FROM herd/busybox:1\nCOPY version /version\nLABEL app=parity\nCMD ["sleep", "100000"]\n' > /root/parity-ctx/Dockerfile
"#;

/// What docker lists, without ids, timestamps or anything else that
/// differs between two hosts doing the same thing.
const COLLECT: &str = r#"set -eu
mkdir -p /root/parity/docker-state
cd /root/parity/docker-state
docker ps -a --filter name=parity- --format '{{.Names}} {{.Image}} {{.State}}' | sort > ps
docker network ls --filter name=parity- --format '{{.Name}} {{.Driver}}' | sort > networks
docker volume ls --filter name=parity- --format '{{.Name}} {{.Driver}}' | sort > volumes
docker images --format '{{.Repository}}:{{.Tag}}' | grep -v '<none>' | sort > images
python3 - <<'PY'
import json, re, subprocess
def inspect(kind, names):
    if not names:
        return []
    out = subprocess.run(['docker', kind, 'inspect', *names], capture_output=True, text=True)
    return json.loads(out.stdout or '[]')
names = subprocess.run(['docker', 'ps', '-a', '--filter', 'name=parity-', '--format', '{{.Names}}'],
                       capture_output=True, text=True).stdout.split()
short = re.compile(r'^[0-9a-f]{12}$')
with open('containers', 'w') as f:
    for c in sorted(inspect('container', names), key=lambda c: c['Name']):
        h, cfg = c['HostConfig'], c['Config']
        nets = {n: sorted(a for a in (v.get('Aliases') or []) if not short.match(a))
                for n, v in c['NetworkSettings']['Networks'].items()}
        # Compose's labels naming its temp project dir and the image id
        # differ between any two hosts.
        labels = {k: v for k, v in (cfg['Labels'] or {}).items()
                  if k not in ('com.docker.compose.image', 'com.docker.compose.project.config_files',
                               'com.docker.compose.project.working_dir')}
        # What the docker CLI sends where the collection's API call sends
        # nothing (COMPATIBILITY.md): no ports is {} and no restart policy
        # is "no" from the CLI, null and "" from the API.
        restart = dict(h['RestartPolicy'])
        if restart.get('Name') == 'no':
            restart['Name'] = ''
        view = {
            'Name': c['Name'], 'Image': cfg['Image'], 'Cmd': cfg['Cmd'],
            'Env': sorted(cfg['Env'] or []), 'Labels': labels,
            'Healthcheck': cfg.get('Healthcheck'), 'Status': c['State']['Status'],
            'Memory': h['Memory'], 'NanoCpus': h['NanoCpus'], 'Init': h.get('Init'),
            'RestartPolicy': restart, 'PortBindings': h['PortBindings'] or None,
            'Binds': h['Binds'], 'Mounts': h.get('Mounts'), 'Networks': nets,
        }
        f.write(json.dumps(view, sort_keys=True) + '\n')
with open('network', 'w') as f:
    for n in inspect('network', ['parity-net']):
        ipam = dict(n['IPAM'], Options=n['IPAM'].get('Options') or None)
        f.write(json.dumps({'Name': n['Name'], 'IPAM': ipam, 'Labels': n['Labels'],
                            'Internal': n['Internal']}, sort_keys=True) + '\n')
with open('volume', 'w') as f:
    for v in inspect('volume', ['parity-vol']):
        f.write(json.dumps({'Name': v['Name'], 'Driver': v['Driver'], 'Labels': v['Labels']},
                           sort_keys=True) + '\n')
PY
"#;

fn docker_host(f: &Fleet, host: &str) {
    f.ensure_docker(host);
}

#[test]
fn docker_playbook_leaves_the_same_state_as_ansible() {
    let f = fleet();
    let _a = f.lock("herd-49");
    let _h = f.lock("herd-50");
    std::thread::scope(|s| {
        let a = s.spawn(|| docker_host(f, "herd-49"));
        docker_host(f, "herd-50");
        a.join().expect("docker on herd-49 panicked");
    });
    Parity {
        label: "docker",
        playbook: repo().join("tests/fixtures/parity/docker/site.yml"),
        ansible_host: "herd-49",
        herd_host: "herd-50",
        prepare: PREPARE,
        collect: COLLECT,
        paths: &["/root/parity"],
        collections: &["community.docker"],
        ..Parity::default()
    }
    .run();
}
