//! A Docker engine for the docker modules' unit tests: a [`FakeHost`]
//! whose model keeps networks, volumes, images and containers as the
//! `inspect` documents the real CLI prints, and answers the scripts
//! [`super::probe`] and [`super::apply`] build, one docker argv per line.
//! It knows the flags the modules send, not all of docker's.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::shell_quote::split;
use crate::testing::{exec, FakeHost, Match};
use crate::{DynModule, Outcome, Plan};

/// The engine's objects, by name.
#[derive(Debug, Default)]
pub(crate) struct FakeDocker {
    pub(crate) networks: BTreeMap<String, Value>,
    pub(crate) volumes: BTreeMap<String, Value>,
    /// By reference (`name:tag`).
    pub(crate) images: BTreeMap<String, Value>,
    pub(crate) containers: BTreeMap<String, Value>,
    /// What `docker pull` finds in the "registry", by reference.
    pub(crate) registry: BTreeMap<String, Value>,
    /// Every docker argv run, in order.
    pub(crate) calls: Vec<Vec<String>>,
    next_id: u64,
}

type Run = (i32, String, String);

fn ok(out: impl Into<String>) -> Run {
    (0, out.into(), String::new())
}

fn fail(err: impl Into<String>) -> Run {
    (1, String::new(), format!("Error: {}\n", err.into()))
}

/// The image document the fake gives a reference.
pub(crate) fn image_doc(reference: &str, id: &str) -> Value {
    json!({
        "Id": format!("sha256:{id}"),
        "RepoTags": [reference],
        "RepoDigests": [],
        "Config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["/bin/sh"],
            "Entrypoint": null,
            "Labels": {"from": "image"},
            "WorkingDir": "",
            "User": "",
        },
    })
}

impl FakeDocker {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("{:064x}", self.next_id)
    }

    /// An image present locally.
    pub(crate) fn add_image(&mut self, reference: &str) {
        let id = self.id();
        self.images
            .insert(reference.to_string(), image_doc(reference, &id));
    }

    /// A running container made outside the module.
    pub(crate) fn add_container(&mut self, name: &str) {
        let id = self.id();
        self.containers.insert(
            name.to_string(),
            json!({
                "Id": id, "Name": format!("/{name}"), "Image": "sha256:0",
                "State": {"Running": true, "Status": "running"},
                "Config": {"Image": "other", "Labels": {}, "Env": []},
                "HostConfig": {}, "NetworkSettings": {"Networks": {}},
            }),
        );
    }

    fn exec(&mut self, argv: &[String], stdin: Option<&[u8]>) -> Run {
        self.calls.push(argv.to_vec());
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        match a.as_slice() {
            ["docker", "network", rest @ ..] => self.network(rest),
            ["docker", "volume", rest @ ..] => self.volume(rest),
            ["docker", "image", "inspect", r] => match self.images.get(*r) {
                Some(i) => ok(format!("[{i}]")),
                None => fail(format!("No such image: {r}")),
            },
            ["docker", "container", rest @ ..] => super::fake_container::run(self, rest, stdin),
            ["docker", rest @ ..] => super::fake_container::other(self, rest, stdin),
            _ => (127, String::new(), format!("sh: {}: not found\n", a[0])),
        }
    }

    fn network(&mut self, a: &[&str]) -> Run {
        match a {
            ["inspect", n] => match self.networks.get(*n) {
                Some(v) => ok(format!("[{v}]")),
                None => fail(format!("No such network: {n}")),
            },
            ["rm", n] => match self.networks.remove(*n) {
                Some(_) => ok(format!("{n}\n")),
                None => fail(format!("No such network: {n}")),
            },
            ["connect", rest @ ..] => {
                let mut aliases = Vec::new();
                let mut ip = None;
                let mut words = Vec::new();
                let mut it = rest.iter();
                while let Some(w) = it.next() {
                    match *w {
                        "--alias" => {
                            aliases.push(it.next().copied().unwrap_or_default().to_string());
                        }
                        "--ip" => ip = it.next().copied(),
                        other => words.push(other),
                    }
                }
                let [n, c] = words.as_slice() else {
                    return fail("connect: expected a network and a container");
                };
                super::fake_container::connect(self, n, c, &aliases, ip)
            }
            ["disconnect", "--force", n, c] => super::fake_container::disconnect(self, n, c),
            ["create", flags @ ..] => self.network_create(flags),
            _ => fail(format!("fake: unknown network command {a:?}")),
        }
    }

    fn network_create(&mut self, flags: &[&str]) -> Run {
        let Some((name, flags)) = flags.split_last() else {
            return fail("no name");
        };
        if self.networks.contains_key(*name) {
            return fail(format!("network with name {name} already exists"));
        }
        let mut net = json!({
            "Name": name, "Id": self.id(), "Driver": "bridge", "Scope": "local",
            "EnableIPv6": false, "Internal": false, "Attachable": false,
            "IPAM": {"Driver": "default", "Options": {}, "Config": []},
            "Containers": {}, "Options": {}, "Labels": {},
        });
        let mut it = flags.iter();
        while let Some(f) = it.next() {
            let mut val = || it.next().copied().unwrap_or_default().to_string();
            match *f {
                "--driver" => net["Driver"] = json!(val()),
                "--opt" => kv(&mut net["Options"], &val()),
                "--label" => kv(&mut net["Labels"], &val()),
                "--ipam-driver" => net["IPAM"]["Driver"] = json!(val()),
                "--ipam-opt" => kv(&mut net["IPAM"]["Options"], &val()),
                "--subnet" => push_pool(&mut net, "Subnet", val()),
                "--gateway" => last_pool(&mut net)["Gateway"] = json!(val()),
                "--ip-range" => last_pool(&mut net)["IPRange"] = json!(val()),
                "--aux-address" => kv(&mut last_pool(&mut net)["AuxiliaryAddresses"], &val()),
                "--internal" => net["Internal"] = json!(true),
                "--ipv6" => net["EnableIPv6"] = json!(true),
                "--attachable" => net["Attachable"] = json!(true),
                "--scope" => net["Scope"] = json!(val()),
                other => return fail(format!("fake: unknown flag {other}")),
            }
        }
        self.networks.insert((*name).to_string(), net);
        ok("id\n")
    }

    fn volume(&mut self, a: &[&str]) -> Run {
        match a {
            ["inspect", n] => match self.volumes.get(*n) {
                Some(v) => ok(format!("[{v}]")),
                None => fail(format!("No such volume: {n}")),
            },
            ["rm", n] | ["rm", "--force", n] => match self.volumes.remove(*n) {
                Some(_) => ok(format!("{n}\n")),
                None => fail(format!("No such volume: {n}")),
            },
            ["create", flags @ ..] => {
                let Some((name, flags)) = flags.split_last() else {
                    return fail("no name");
                };
                let mut v = json!({
                    "Name": name, "Driver": "local", "Mountpoint":
                    format!("/var/lib/docker/volumes/{name}/_data"),
                    "Options": {}, "Labels": {}, "Scope": "local",
                });
                let mut it = flags.iter();
                while let Some(f) = it.next() {
                    let val = it.next().copied().unwrap_or_default();
                    match *f {
                        "--driver" => v["Driver"] = json!(val),
                        "--opt" => kv(&mut v["Options"], val),
                        "--label" => kv(&mut v["Labels"], val),
                        other => return fail(format!("fake: unknown flag {other}")),
                    }
                }
                self.volumes.insert((*name).to_string(), v);
                ok(format!("{name}\n"))
            }
            _ => fail(format!("fake: unknown volume command {a:?}")),
        }
    }
}

/// `k=v` into a JSON object.
pub(crate) fn kv(obj: &mut Value, pair: &str) {
    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    obj[k] = json!(v);
}

fn push_pool(net: &mut Value, key: &str, v: String) {
    if let Some(a) = net["IPAM"]["Config"].as_array_mut() {
        a.push(json!({ key: v }));
    }
}

fn last_pool(net: &mut Value) -> &mut Value {
    let a = net["IPAM"]["Config"].as_array_mut().expect("pools");
    if a.is_empty() {
        a.push(json!({}));
    }
    a.last_mut().expect("a pool")
}

/// Run a script the modules built, line by line.
fn answer(
    h: &mut FakeHost<FakeDocker>,
    script: &str,
    stdin: Option<&[u8]>,
) -> crate::testing::Reply {
    let mut out = String::new();
    let mut last = 0;
    for line in script.lines() {
        if line == "echo @@herd-docker" {
            out.push_str("@@herd-docker\n");
        } else if line.starts_with("printf '\\n@@herd-docker-rc") {
            out.push_str(&format!("\n@@herd-docker-rc {last}\n"));
        } else if let Some(cmd) = line.strip_suffix(" >/dev/null || exit $?") {
            let (rc, _, err) = run_line(h, cmd, stdin);
            if rc != 0 {
                return Ok(exec(rc, out, err));
            }
        } else if let Some(cmd) = line.strip_suffix(" 2>&1") {
            let (rc, o, e) = run_line(h, cmd, stdin);
            out.push_str(&o);
            out.push_str(&e);
            last = rc;
        } else if !line.trim().is_empty() {
            let (rc, o, e) = run_line(h, line, stdin);
            out.push_str(&o);
            if rc != 0 {
                return Ok(exec(rc, out, e));
            }
        }
    }
    Ok(exec(0, out, ""))
}

fn run_line(h: &mut FakeHost<FakeDocker>, line: &str, stdin: Option<&[u8]>) -> Run {
    let argv = split(line).expect("the fake reads a quoted command");
    if let [cat, dashes, path] = argv.as_slice() {
        if cat == "cat" && dashes == "--" {
            return match h.files.get(path) {
                Some(c) => (0, c.clone(), String::new()),
                None => (
                    1,
                    String::new(),
                    format!("cat: {path}: No such file or directory\n"),
                ),
            };
        }
    }
    let d: &mut FakeDocker = h;
    d.exec(&argv, stdin)
}

/// A host with an empty engine.
pub(crate) fn host() -> FakeHost<FakeDocker> {
    let mut d = FakeDocker::default();
    d.add_image("herd/busybox:1");
    FakeHost::with_state(d).handle(Match::when(|_| true), answer)
}

/// Plan through the module's JSON face, as the engine does.
pub(crate) fn plan(m: &dyn DynModule, h: &mut FakeHost<FakeDocker>, params: &Value) -> Plan {
    m.plan(params, h)
        .unwrap_or_else(|e| panic!("{} plan failed: {e}", m.name()))
}

/// Apply, then plan again: the plan must be empty.
pub(crate) fn converge(
    m: &dyn DynModule,
    h: &mut FakeHost<FakeDocker>,
    params: &Value,
) -> (Plan, Outcome) {
    let first = plan(m, h, params);
    assert!(!first.is_empty(), "{}: expected changes", m.name());
    let out = m
        .apply(params, first.clone(), h)
        .unwrap_or_else(|e| panic!("{} apply failed: {e}", m.name()));
    let again = plan(m, h, params);
    assert!(
        again.is_empty(),
        "{}: plan after apply is not empty: {:?}",
        m.name(),
        again.changes
    );
    (first, out)
}
