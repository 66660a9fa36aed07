#!/usr/bin/env python3
"""A stand-in for an Elasticsearch node, for herd's fleet tests.

It serves the HTTP endpoints the `elasticsearch_cluster` module uses
(`/`, `/_cluster/health`, `/_cat/nodes`, `/_cluster/settings`) and reports
the nodes that are actually running: nodes find each other by polling the
stand-ins at their seed hosts over HTTP, a cluster forms only when a
majority of the master nodes can see each other, and a node without a
formed cluster to join stays out. See README.md for what it models and
what it does not.
"""

import argparse
import glob
import json
import os
import re
import resource
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid as uuidlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

# Settings the stand-in understands; anything else refuses to start, as
# Elasticsearch does with "unknown setting".
KNOWN = {
    "cluster.name", "node.name", "node.roles", "path.data", "path.logs",
    "network.host", "http.port", "transport.port", "discovery.seed_hosts",
    "cluster.initial_master_nodes", "bootstrap.memory_lock",
    "xpack.security.enabled", "xpack.security.enrollment.enabled",
    "xpack.security.http.ssl.enabled", "xpack.security.transport.ssl.enabled",
    "action.destructive_requires_name", "indices.query.bool.max_clause_count",
}
ROLES = {
    "master", "data", "ingest", "data_content", "data_hot", "data_warm",
    "data_cold", "data_frozen", "ml", "remote_cluster_client", "transform",
    "voting_only",
}
POLL = 0.5           # seconds between discovery rounds
MEMBER_TTL = 3.0     # a member not heard from for this long has left
NODE_LEFT_DELAY = 60  # index.unassigned.node_left.delayed_timeout
MIN_NOFILE = 65535
MAX_MAP_COUNT = 262144


class ConfigError(Exception):
    pass


def parse_value(raw):
    raw = raw.strip()
    if raw == "":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        pass
    if raw.startswith("[") and raw.endswith("]"):
        return [x.strip().strip("\"'") for x in raw[1:-1].split(",") if x.strip()]
    if raw in ("true", "false"):
        return raw == "true"
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    return raw.strip("\"'")


def parse_yml(text):
    """Flat `key: value` lines (the form the module writes)."""
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() or ":" not in line:
            raise ConfigError(
                "elasticsearch.yml line %d: the stand-in reads flat `key: value` lines only" % n)
        k, v = line.split(":", 1)
        out[k.strip()] = parse_value(v)
    return out


def heap_options(conf):
    xms = xmx = None
    files = [os.path.join(conf, "jvm.options")] + sorted(
        glob.glob(os.path.join(conf, "jvm.options.d", "*.options")))
    for f in files:
        if not os.path.exists(f):
            continue
        for line in open(f):
            line = line.strip()
            if line.startswith("-Xms"):
                xms = line[4:]
            elif line.startswith("-Xmx"):
                xmx = line[4:]
    return xms, xmx


def load_config(conf):
    path = os.path.join(conf, "elasticsearch.yml")
    try:
        cfg = parse_yml(open(path).read())
    except OSError as e:
        raise ConfigError("cannot read %s: %s" % (path, e))
    for k in cfg:
        if k not in KNOWN and not k.startswith("node.attr."):
            raise ConfigError("unknown setting [%s] please check that any required plugins "
                              "are installed, or check the breaking changes documentation" % k)
    roles = cfg.get("node.roles", ["master", "data", "ingest"])
    if not isinstance(roles, list) or not all(r in ROLES for r in roles):
        raise ConfigError("node.roles must be a list of known roles, got %r" % (roles,))
    seeds = cfg.get("discovery.seed_hosts", [])
    if isinstance(seeds, str):
        seeds = [s.strip() for s in seeds.split(",") if s.strip()]
    initial = cfg.get("cluster.initial_master_nodes") or []
    try:
        port = int(cfg.get("http.port", 9200))
    except (TypeError, ValueError):
        raise ConfigError("http.port must be a number")
    xms, xmx = heap_options(conf)
    if xms and xmx and xms != xmx:
        raise ConfigError("bootstrap check failure: initial heap size [%s] not equal to maximum "
                          "heap size [%s]" % (xms, xmx))
    return {
        "cluster_name": str(cfg.get("cluster.name", "elasticsearch")),
        "node_name": str(cfg.get("node.name", socket.gethostname())),
        "roles": roles,
        "data": cfg.get("path.data") or "data",
        "logs": cfg.get("path.logs") or "logs",
        "host": str(cfg.get("network.host", "127.0.0.1")),
        "port": port,
        "seeds": [str(s) for s in seeds],
        "initial": [str(s) for s in initial],
        "memory_lock": bool(cfg.get("bootstrap.memory_lock", False)),
        "heap": xmx or "1g",
    }


def raise_error(msg):
    raise ConfigError(msg)


def bootstrap_checks(cfg, warn):
    """Elasticsearch's production-mode checks that the unit's limits decide."""
    if cfg["host"].startswith("127.") or cfg["host"] in ("localhost", "::1", "_local_"):
        return  # development mode: Elasticsearch skips these checks on loopback
    # The fleet's hosts are containers without CAP_SYS_RESOURCE: no unit
    # can raise a limit above the machine's hard limit there. The test
    # says so in /etc/es-standin.conf (`limit_checks = warn`); without it
    # these checks refuse to start, as Elasticsearch's do.
    limit_fail = raise_error
    try:
        if re.search(r"^\s*limit_checks\s*=\s*warn\s*$", open("/etc/es-standin.conf").read(), re.M):
            limit_fail = warn
    except OSError:
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < MIN_NOFILE:
        limit_fail("bootstrap check failure: max file descriptors [%d] for elasticsearch "
                   "process is too low, increase to at least [%d]" % (soft, MIN_NOFILE))
    if cfg["memory_lock"]:
        soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        if soft != resource.RLIM_INFINITY:
            limit_fail("bootstrap check failure: memory locking requested for "
                       "elasticsearch process but memory is not locked")
    try:
        mmc = int(open("/proc/sys/vm/max_map_count").read())
    except (OSError, ValueError):
        mmc = MAX_MAP_COUNT
    if mmc < MAX_MAP_COUNT:
        # Elasticsearch refuses to start here; the stand-in only warns
        # (container hosts cannot raise it, see README.md).
        warn("bootstrap check (not enforced by the stand-in): max virtual memory areas "
             "vm.max_map_count [%d] is too low, increase to at least [%d]" % (mmc, MAX_MAP_COUNT))


def flatten(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        key = prefix + k
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def nest(flat):
    out = {}
    for k, v in sorted(flat.items()):
        cur = out
        parts = k.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = v
    return out


def http_json(url, body=None, method=None, timeout=1.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    req.add_header("Content-Type", "application/json")
    req.add_header("X-Standin-Forwarded", "1")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Node:
    def __init__(self, cfg, version):
        self.cfg = cfg
        self.version = version
        self.name = cfg["node_name"]
        self.master_eligible = "master" in cfg["roles"]
        self.is_data = any(r.startswith("data") for r in cfg["roles"])
        self.lock = threading.RLock()
        self.state_dir = os.path.join(cfg["data"], "_state")
        self.events = os.path.join(cfg["logs"], "standin-events.log")
        st = {}
        try:
            st = json.load(open(os.path.join(self.state_dir, "node.json")))
        except (OSError, ValueError):
            pass
        self.uuid = st.get("cluster_uuid")
        self.voting = st.get("voting", [])
        self.persistent = st.get("persistent", {})
        self.transient = {}
        self.known_data = set(st.get("known_data", []))
        self.state_version = st.get("state_version", 0)
        self.master = None          # (name, base url)
        self.master_fail = 0
        self.members = {}           # at the master: name -> info
        self.left_at = {}           # at the master: data node -> time it left
        self.pending = set()        # at the master: rejoined under `primaries`
        self.my_url = "http://%s:%d" % (cfg["host"], cfg["port"])

    # -- bookkeeping ------------------------------------------------------
    def event(self, what):
        line = "%.3f %s %s\n" % (time.time(), self.name, what)
        try:
            with open(self.events, "a") as f:
                f.write(line)
        except OSError:
            pass
        sys.stdout.write(line)
        sys.stdout.flush()

    def save(self):
        os.makedirs(self.state_dir, exist_ok=True)
        tmp = os.path.join(self.state_dir, ".node.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"cluster_uuid": self.uuid, "voting": self.voting,
                       "persistent": self.persistent,
                       "known_data": sorted(self.known_data),
                       "state_version": self.state_version}, f)
        os.replace(tmp, os.path.join(self.state_dir, "node.json"))

    def info(self):
        return {"name": self.name, "url": self.my_url, "ip": self.cfg["host"],
                "roles": self.cfg["roles"], "uuid": self.uuid,
                "cluster_name": self.cfg["cluster_name"], "heap": self.cfg["heap"],
                "version": self.version, "initial": self.cfg["initial"],
                "acked": self.state_version}

    def public_state(self):
        with self.lock:
            d = self.info()
            d["master_eligible"] = self.master_eligible
            d["is_master"] = self.master is not None and self.master[0] == self.name
            return d

    def i_am_master(self):
        return self.master is not None and self.master[0] == self.name

    def allocation(self):
        return self.transient.get("cluster.routing.allocation.enable",
                                  self.persistent.get("cluster.routing.allocation.enable", "all"))

    # -- discovery --------------------------------------------------------
    def peers(self):
        out = []
        for seed in self.cfg["seeds"]:
            host = seed.rsplit(":", 1)[0] if seed.count(":") == 1 else seed
            url = "http://%s:%d" % (host, self.cfg["port"])
            if url == self.my_url:
                continue
            try:
                st, body = http_json(url + "/_standin/state", timeout=1.0)
                if st == 200:
                    out.append(json.loads(body))
            except (OSError, ValueError):
                pass
        return out

    def become_master(self, uuid, voting):
        self.uuid = uuid
        self.voting = sorted(set(voting))
        self.master = (self.name, self.my_url)
        self.members = {self.name: dict(self.info(), seen=time.time())}
        if self.is_data:
            self.known_data.add(self.name)
        self.save()
        self.event("elected uuid=%s voting=%s" % (uuid, ",".join(self.voting)))

    def try_join(self, name, url):
        body = self.info()
        try:
            st, resp = http_json(url + "/_standin/join", body=body, timeout=2.0)
        except OSError:
            return False
        if st != 200:
            return False
        cs = json.loads(resp)
        with self.lock:
            first = self.master is None or self.master[0] != name
            changed = self.uuid != cs["uuid"] or self.voting != cs["voting"] or \
                self.persistent != cs["persistent"]
            self.uuid, self.voting = cs["uuid"], cs["voting"]
            self.persistent, self.transient = cs["persistent"], cs["transient"]
            changed = changed or self.known_data != set(cs["known_data"])
            self.known_data = set(cs["known_data"])
            self.state_version = cs["state_version"]
            self.master = (name, url)
            self.master_fail = 0
            if changed or first:
                self.save()
            if first:
                self.event("joined master=%s uuid=%s" % (name, self.uuid))
        return True

    def round(self):
        peers = self.peers()
        with self.lock:
            master = self.master
        if master is not None and master[0] != self.name:
            if not self.try_join(*master):
                with self.lock:
                    self.master_fail += 1
                    if self.master_fail >= 3:
                        self.event("master %s lost" % master[0])
                        self.master = None
            return
        if master is not None:
            with self.lock:
                self.expire_members(peers)
            return
        # No master: join one a peer is, or elect one.
        for p in peers:
            if p.get("is_master") and p["cluster_name"] == self.cfg["cluster_name"] and \
                    (self.uuid is None or self.uuid == p["uuid"]):
                if self.try_join(p["name"], p["url"]):
                    return
        if not self.master_eligible:
            return
        with self.lock:
            eligible = [p for p in peers if p.get("master_eligible") and
                        p["cluster_name"] == self.cfg["cluster_name"]]
            if self.uuid is None:
                initial = self.cfg["initial"]
                if self.name not in initial:
                    return  # no cluster to join and none to bootstrap
                cands = [self.name] + [p["name"] for p in eligible if p["uuid"] is None and
                                       p["name"] in initial and p["initial"] == initial]
                if len(set(cands)) * 2 > len(initial) and min(cands) == self.name:
                    self.become_master(str(uuidlib.uuid4()), initial)
            else:
                voting = self.voting or [self.name]
                cands = [self.name] + [p["name"] for p in eligible if p["uuid"] == self.uuid]
                if len(set(cands) & set(voting)) * 2 > len(voting) and min(cands) == self.name:
                    self.become_master(self.uuid, voting)

    def expire_members(self, peers):
        now = time.time()
        self.members[self.name]["seen"] = now
        for name in list(self.members):
            if now - self.members[name]["seen"] > MEMBER_TTL:
                info = self.members.pop(name)
                self.pending.discard(name)
                if any(r.startswith("data") for r in info["roles"]):
                    self.left_at[name] = now
                self.event("node-left %s" % name)
        # Without a majority of the voting nodes the master steps down.
        seen = {self.name} | {p["name"] for p in peers if p.get("uuid") == self.uuid}
        if self.voting and len(seen & set(self.voting)) * 2 <= len(self.voting):
            self.event("stepping down: no majority of %s" % ",".join(self.voting))
            self.master = None
            self.members = {}

    def join(self, info):
        """At the master: a node joins or says it is still there."""
        with self.lock:
            if not self.i_am_master():
                return 503, {"error": "not the master"}
            if info["cluster_name"] != self.cfg["cluster_name"]:
                return 409, {"error": "cluster name differs"}
            if info["uuid"] is not None and info["uuid"] != self.uuid:
                return 409, {"error": "node belongs to cluster %s" % info["uuid"]}
            new = info["name"] not in self.members
            self.members[info["name"]] = dict(info, seen=time.time())
            if new:
                data = any(r.startswith("data") for r in info["roles"])
                if data:
                    if info["name"] in self.known_data and self.allocation() != "all":
                        self.pending.add(info["name"])
                    self.known_data.add(info["name"])
                    self.left_at.pop(info["name"], None)
                if "master" in info["roles"] and info["name"] not in self.voting:
                    self.voting = sorted(set(self.voting) | {info["name"]})
                self.save()
                self.event("node-join %s" % info["name"])
            return 200, {"uuid": self.uuid, "voting": self.voting,
                         "persistent": self.persistent, "transient": self.transient,
                         "known_data": sorted(self.known_data),
                         "state_version": self.state_version}

    # -- cluster views (at the master) ------------------------------------
    def health(self):
        with self.lock:
            now = time.time()
            if self.allocation() == "all":
                self.pending.clear()
                for name, t in list(self.left_at.items()):
                    if now - t > NODE_LEFT_DELAY:
                        del self.left_at[name]
                        self.known_data.discard(name)
            members = list(self.members.values())
            data = [m["name"] for m in members if any(r.startswith("data") for r in m["roles"])]
            missing = sorted(self.known_data - set(data))
            primaries = len(self.known_data) if data else 0
            unassigned = len(missing) + len(self.pending) + (1 if len(data) == 1 else 0)
            if not data:
                status, unassigned = "red", 2 * len(self.known_data)
            elif missing or self.pending or len(data) < 2:
                status = "yellow"
            else:
                status = "green"
            total = 2 * primaries
            return {
                "cluster_name": self.cfg["cluster_name"], "status": status, "timed_out": False,
                "number_of_nodes": len(members), "number_of_data_nodes": len(data),
                "active_primary_shards": primaries, "active_shards": max(total - unassigned, 0),
                "relocating_shards": 0, "initializing_shards": 0,
                "unassigned_shards": unassigned, "delayed_unassigned_shards": 0,
                "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
                "task_max_waiting_in_queue_millis": 0,
                "active_shards_percent_as_number":
                    100.0 if total == 0 else round(100.0 * (total - unassigned) / total, 1),
            }

    def cat_nodes(self):
        with self.lock:
            rows = []
            for m in sorted(self.members.values(), key=lambda m: m["name"]):
                letters = "".join(sorted({"master": "m", "data": "d", "ingest": "i", "ml": "l",
                                          "remote_cluster_client": "r", "transform": "t"}
                                         .get(r, "d" if r.startswith("data") else "") for r in m["roles"]))
                rows.append({"ip": m["ip"], "name": m["name"], "node.role": letters or "-",
                             "master": "*" if m["name"] == self.name else "-",
                             "heap.max": m["heap"], "version": m["version"]})
            return rows

    def put_settings(self, body):
        with self.lock:
            out = {"acknowledged": True, "persistent": {}, "transient": {}}
            for scope, store in (("persistent", self.persistent), ("transient", self.transient)):
                for k, v in flatten(body.get(scope)).items():
                    if v is None:
                        store.pop(k, None)
                    else:
                        store[k] = v if isinstance(v, str) else json.dumps(v)
                    out[scope][k] = v
            if self.allocation() == "all":
                self.pending.clear()
            self.state_version += 1
            version = self.state_version
            self.save()
            self.event("settings %s" % json.dumps(body, sort_keys=True))
        # Like a cluster state publication: acknowledged once a majority of
        # the voting masters hold the new settings (they get them with the
        # answer to their next join/heartbeat).
        end = time.time() + 10
        while time.time() < end:
            with self.lock:
                acked = {n for n, m in self.members.items()
                         if m.get("acked", 0) >= version} | {self.name}
                if len(acked & set(self.voting)) * 2 > len(self.voting):
                    return 200, out
            time.sleep(0.1)
        return 503, {"error": {"type": "process_cluster_event_timeout_exception",
                               "reason": "settings not acknowledged by a majority of masters"},
                     "status": 503}


NO_MASTER = {"error": {"root_cause": [{"type": "master_not_discovered_exception", "reason": None}],
                       "type": "master_not_discovered_exception", "reason": None}, "status": 503}


def make_handler(node):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send(self, status, obj, text=None):
            body = (text if text is not None else json.dumps(obj, indent=2) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type",
                             "text/plain; charset=UTF-8" if text is not None else "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            return json.loads(raw) if raw.strip() else {}

        def forward(self, method, body=None, timeout=5.0):
            """Cluster-level requests are answered by the elected master."""
            with node.lock:
                master = node.master
            if master is None or self.headers.get("X-Standin-Forwarded"):
                return self.send(503, NO_MASTER)
            try:
                st, resp = http_json(master[1] + self.path, body=body, method=method,
                                     timeout=timeout)
            except OSError:
                return self.send(503, NO_MASTER)
            self.send_response(st)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(resp)))
            self.end_headers()
            self.wfile.write(resp)

        def do_GET(self):
            u = urlparse(self.path)
            q = {k: v[-1] for k, v in parse_qs(u.query).items()}
            if u.path == "/":
                with node.lock:
                    return self.send(200, {
                        "name": node.name, "cluster_name": node.cfg["cluster_name"],
                        "cluster_uuid": node.uuid or "_na_",
                        "version": {"number": node.version, "build_flavor": "default",
                                    "build_type": "tar", "build_snapshot": False},
                        "tagline": "You Know, for Search"})
            if u.path == "/_standin/state":
                return self.send(200, node.public_state())
            if u.path not in ("/_cluster/health", "/_cat/nodes", "/_cluster/settings"):
                return self.send(404, {"error": "no handler for %s (stand-in)" % u.path,
                                       "status": 404})
            with node.lock:
                mine = node.i_am_master()
            if not mine:
                return self.forward("GET", timeout=float(q.get("timeout", "30s").rstrip("s")) + 5
                                    if u.path == "/_cluster/health" else 5.0)
            if u.path == "/_cluster/health":
                return self.health(q)
            if u.path == "/_cat/nodes":
                rows = node.cat_nodes()
                cols = q.get("h", "ip,node.role,master,name").split(",")
                if q.get("format") == "json":
                    return self.send(200, [{c: r.get(c) for c in cols} for r in rows])
                text = "".join(" ".join(str(r.get(c, "-")) for c in cols) + "\n" for r in rows)
                return self.send(200, None, text=text)
            with node.lock:
                flat = q.get("flat_settings") == "true"
                shape = (lambda d: dict(d)) if flat else nest
                return self.send(200, {"persistent": shape(node.persistent),
                                       "transient": shape(node.transient)})

        def health(self, q):
            want = q.get("wait_for_status")
            nodes = q.get("wait_for_nodes")
            try:
                timeout = float(q.get("timeout", "30s").rstrip("s"))
            except ValueError:
                return self.send(400, {"error": "bad timeout", "status": 400})
            rank = {"red": 0, "yellow": 1, "green": 2}
            end = time.time() + min(timeout, 600)
            while True:
                h = node.health()
                ok = want is None or rank[h["status"]] >= rank.get(want, 0)
                if ok and nodes:
                    m = re.fullmatch(r"(>=|<=|>|<|ge\(|le\(|gt\(|lt\()?(\d+)\)?", nodes)
                    n, op = int(m.group(2)), (m.group(1) or "=") if m else "="
                    have = h["number_of_nodes"]
                    ok = {">=": have >= n, "ge(": have >= n, "<=": have <= n, "le(": have <= n,
                          ">": have > n, "gt(": have > n, "<": have < n, "lt(": have < n,
                          "=": have == n}[op]
                if ok:
                    return self.send(200, h)
                if time.time() >= end or not node.i_am_master():
                    h["timed_out"] = True
                    return self.send(408, h)
                time.sleep(0.2)

        def do_PUT(self):
            u = urlparse(self.path)
            if u.path != "/_cluster/settings":
                return self.send(405, {"error": "stand-in: PUT %s not supported" % u.path,
                                       "status": 405})
            try:
                body = self.body()
            except ValueError:
                return self.send(400, {"error": "request body is not JSON", "status": 400})
            with node.lock:
                mine = node.i_am_master()
            if not mine:
                return self.forward("PUT", body=body)
            st, out = node.put_settings(body)
            return self.send(st, out)

        def do_POST(self):
            if urlparse(self.path).path != "/_standin/join":
                return self.send(405, {"error": "stand-in: POST not supported", "status": 405})
            st, out = node.join(self.body())
            return self.send(st, out)

    return H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conf", required=True)
    ap.add_argument("--version", required=True)
    a = ap.parse_args()

    def warn(msg):
        sys.stderr.write("WARNING: %s\n" % msg)

    try:
        if os.geteuid() == 0:
            raise ConfigError("can not run elasticsearch as root")
        cfg = load_config(a.conf)
        os.makedirs(cfg["data"], exist_ok=True)
        os.makedirs(cfg["logs"], exist_ok=True)
        # Elasticsearch writes its node metadata under <path.data>/_state
        # when the node is built, before the bootstrap checks and before any
        # cluster forms; so does the stand-in. A first start that fails its
        # bootstrap checks leaves `_state` behind, as a real one does.
        state = os.path.join(cfg["data"], "_state")
        os.makedirs(state, exist_ok=True)
        node_id = os.path.join(state, "node-id")
        if not os.path.exists(node_id):
            with open(node_id, "w") as f:
                f.write(str(uuidlib.uuid4()) + "\n")
        bootstrap_checks(cfg, warn)
    except (ConfigError, OSError) as e:
        sys.stderr.write("ERROR: %s\n" % e)
        sys.exit(78)
    node = Node(cfg, a.version)
    if node.uuid is None and node.master_eligible and cfg["initial"] and \
            node.name not in cfg["initial"]:
        warn("this node is not listed in cluster.initial_master_nodes")
    server = ThreadingHTTPServer((cfg["host"], cfg["port"]), make_handler(node))
    server.daemon_threads = True

    def stop(*_):
        node.event("stop")
        os._exit(143)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    node.event("start version=%s roles=%s heap=%s" % (a.version, ",".join(cfg["roles"]),
                                                      cfg["heap"]))

    def loop():
        while True:
            try:
                node.round()
            except Exception as e:  # keep discovering; say what went wrong
                warn("discovery round failed: %r" % (e,))
            time.sleep(POLL)

    threading.Thread(target=loop, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
