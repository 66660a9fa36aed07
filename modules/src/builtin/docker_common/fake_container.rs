//! The fake engine's containers and images: `docker create` read back
//! into the `inspect` document the real engine would show (for the flags
//! the modules send), `start`/`stop`/`rm`/`update`, network connections,
//! `pull` from a fake registry, and the image commands.

use serde_json::{json, Map, Value};

use super::fake::{kv, FakeDocker};

type Run = (i32, String, String);

fn ok(out: impl Into<String>) -> Run {
    (0, out.into(), String::new())
}

fn fail(err: impl Into<String>) -> Run {
    (1, String::new(), format!("Error: {}\n", err.into()))
}

/// `docker container ...`.
pub(super) fn run(d: &mut FakeDocker, a: &[&str], _stdin: Option<&[u8]>) -> Run {
    match a {
        ["inspect", n] => match d.containers.get(*n) {
            Some(c) => ok(format!("[{c}]")),
            None => fail(format!("No such container: {n}")),
        },
        _ => fail(format!("fake: unknown container command {a:?}")),
    }
}

/// `docker create|start|stop|restart|rm|update|pull|...`.
pub(super) fn other(d: &mut FakeDocker, a: &[&str], _stdin: Option<&[u8]>) -> Run {
    match a {
        ["create", rest @ ..] => create(d, rest),
        ["start", n] => set_running(d, n, true),
        ["stop", n] | ["stop", "--time", _, n] => set_running(d, n, false),
        ["restart", n] | ["restart", "--time", _, n] => set_running(d, n, true),
        ["rm", n] | ["rm", "--volumes", n] => {
            match d.containers.get(*n) {
                None => fail(format!("No such container: {n}")),
                Some(c) if c["State"]["Running"] == true => {
                    fail("You cannot remove a running container. Stop the container before attempting removal or force remove")
                }
                Some(_) => {
                    d.containers.remove(*n);
                    for net in d.networks.values_mut() {
                        if let Some(m) = net["Containers"].as_object_mut() {
                            m.retain(|_, v| v["Name"] != *n);
                        }
                    }
                    ok(format!("{n}\n"))
                }
            }
        }
        ["update", rest @ ..] => update(d, rest),
        ["pull", r] => match d.registry.get(*r) {
            Some(i) => {
                d.images.insert((*r).to_string(), i.clone());
                ok(format!("Status: Downloaded newer image for {r}\n"))
            }
            None => fail(format!("manifest for {r} not found: manifest unknown")),
        },
        _ => fail(format!("fake: unknown command {a:?}")),
    }
}

fn set_running(d: &mut FakeDocker, n: &str, on: bool) -> Run {
    let Some(c) = d.containers.get_mut(n) else {
        return fail(format!("No such container: {n}"));
    };
    c["State"] = json!({"Running": on, "Status": if on { "running" } else { "exited" }});
    ok(format!("{n}\n"))
}

fn restart_policy(word: &str) -> Value {
    let (name, max) = word.split_once(':').unwrap_or((word, "0"));
    json!({"Name": name, "MaximumRetryCount": max.parse::<u64>().unwrap_or(0)})
}

fn update(d: &mut FakeDocker, a: &[&str]) -> Run {
    let Some((name, flags)) = a.split_last() else {
        return fail("no name");
    };
    let Some(c) = d.containers.get_mut(*name) else {
        return fail(format!("No such container: {name}"));
    };
    let mut it = flags.iter();
    while let Some(f) = it.next() {
        let v = it.next().copied().unwrap_or_default();
        match *f {
            "--memory" => c["HostConfig"]["Memory"] = json!(v.parse::<u64>().unwrap_or(0)),
            "--memory-swap" => c["HostConfig"]["MemorySwap"] = json!(v.parse::<i64>().unwrap_or(0)),
            "--cpus" => c["HostConfig"]["NanoCpus"] = json!(nano(v)),
            "--restart" => c["HostConfig"]["RestartPolicy"] = restart_policy(v),
            other => return fail(format!("fake: unknown update flag {other}")),
        }
    }
    ok(format!("{name}\n"))
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn nano(v: &str) -> u64 {
    (v.parse::<f64>().unwrap_or(0.0) * 1e9).round() as u64
}

fn ns(v: &str) -> u64 {
    v.strip_suffix("ns")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Connect `name` to `net` as `docker network connect` does.
pub(super) fn connect(
    d: &mut FakeDocker,
    net: &str,
    name: &str,
    aliases: &[String],
    ip: Option<&str>,
) -> Run {
    let Some(c) = d.containers.get_mut(name) else {
        return fail(format!("No such container: {name}"));
    };
    let Some(n) = d.networks.get_mut(net) else {
        if net == "bridge" || net == "host" || net == "none" {
            c["NetworkSettings"]["Networks"][net] = json!({"Aliases": null, "IPAMConfig": null});
            return ok("");
        }
        return fail(format!("No such network: {net}"));
    };
    n["Containers"][format!("id-{name}")] = json!({"Name": name});
    c["NetworkSettings"]["Networks"][net] = json!({
        "Aliases": aliases,
        "IPAMConfig": ip.map(|ip| json!({"IPv4Address": ip})),
    });
    ok("")
}

/// Disconnect `name` from `net`.
pub(super) fn disconnect(d: &mut FakeDocker, net: &str, name: &str) -> Run {
    if let Some(n) = d.networks.get_mut(net) {
        if let Some(m) = n["Containers"].as_object_mut() {
            m.retain(|_, v| v["Name"] != name);
        }
    }
    if let Some(c) = d.containers.get_mut(name) {
        if let Some(m) = c["NetworkSettings"]["Networks"].as_object_mut() {
            m.remove(net);
        }
    }
    ok("")
}

/// Merge `NAME=value` into an env list, replacing the same name.
fn set_env(env: &mut Vec<Value>, pair: &str) {
    let key = pair.split('=').next().unwrap_or(pair);
    env.retain(|e| e.as_str().and_then(|s| s.split('=').next()) != Some(key));
    env.push(json!(pair));
}

/// What `docker create`'s flags said, before the image fills the rest.
struct Draft {
    name: String,
    cfg: Map<String, Value>,
    host: Value,
    env: Vec<String>,
    labels: Map<String, Value>,
    exposed: Map<String, Value>,
    anon: Map<String, Value>,
    health: Map<String, Value>,
    entrypoint: Option<Value>,
    aliases: Vec<String>,
    ip: Option<String>,
}

impl Draft {
    fn new() -> Draft {
        Draft {
            name: String::new(),
            cfg: Map::new(),
            host: json!({
                "Binds": null, "Mounts": [], "PortBindings": {}, "NetworkMode": "bridge",
                "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "Init": null,
                "Privileged": false, "ReadonlyRootfs": false, "AutoRemove": false,
                "CapAdd": null, "CapDrop": null, "VolumesFrom": null, "Dns": [], "ExtraHosts": null,
                "LogConfig": {"Type": "json-file", "Config": {}}, "Memory": 0, "NanoCpus": 0,
            }),
            env: Vec::new(),
            labels: Map::new(),
            exposed: Map::new(),
            anon: Map::new(),
            health: Map::new(),
            entrypoint: None,
            aliases: Vec::new(),
            ip: None,
        }
    }

    /// A flag without a value; false when `f` is not one.
    fn switch(&mut self, f: &str) -> bool {
        match f {
            "--init" => self.host["Init"] = json!(true),
            "--privileged" => self.host["Privileged"] = json!(true),
            "--read-only" => self.host["ReadonlyRootfs"] = json!(true),
            "--rm" => self.host["AutoRemove"] = json!(true),
            "--tty" => {
                self.cfg.insert("Tty".into(), json!(true));
            }
            "--interactive" => {
                self.cfg.insert("OpenStdin".into(), json!(true));
            }
            "--no-healthcheck" => {
                self.health.insert("Test".into(), json!(["NONE"]));
            }
            _ => return false,
        }
        true
    }

    fn publish(&mut self, v: &str) {
        let (rest, cport) = v.rsplit_once(':').unwrap_or(("", v));
        let (hip, hport) = rest.split_once(':').unwrap_or(("", rest));
        let key = if cport.contains('/') {
            cport.to_string()
        } else {
            format!("{cport}/tcp")
        };
        self.exposed.insert(key.clone(), json!({}));
        let mut list = self.host["PortBindings"][&key]
            .as_array()
            .cloned()
            .unwrap_or_default();
        list.push(json!({"HostIp": hip, "HostPort": hport}));
        self.host["PortBindings"][&key] = json!(list);
    }

    fn mount(&mut self, v: &str) {
        let mut m = json!({"ReadOnly": false});
        for part in v.split(',') {
            match part.split_once('=') {
                Some(("type", t)) => m["Type"] = json!(t),
                Some(("source", s)) => m["Source"] = json!(s),
                Some(("target", t)) => m["Target"] = json!(t),
                _ if part == "readonly" => m["ReadOnly"] = json!(true),
                _ => {}
            }
        }
        if let Some(a) = self.host["Mounts"].as_array_mut() {
            a.push(m);
        }
    }

    fn push_host(&mut self, key: &str, v: &str) {
        let mut l = self.host[key].as_array().cloned().unwrap_or_default();
        l.push(json!(v));
        self.host[key] = json!(l);
    }

    /// A flag with a value; an error for one the fake does not know.
    fn flag(&mut self, f: &str, v: &str) -> Result<(), String> {
        match f {
            "--name" => self.name = v.to_string(),
            "--entrypoint" => self.entrypoint = Some(json!([v])),
            "--env" => self.env.push(v.to_string()),
            "--label" => {
                let (k, val) = v.split_once('=').unwrap_or((v, ""));
                self.labels.insert(k.into(), json!(val));
            }
            "--publish" => self.publish(v),
            "--expose" => {
                self.exposed.insert(v.to_string(), json!({}));
            }
            "--volume" if v.contains(':') => self.push_host("Binds", v),
            "--volume" => {
                self.anon.insert(v.to_string(), json!({}));
            }
            "--mount" => self.mount(v),
            "--network" => self.host["NetworkMode"] = json!(v),
            "--network-alias" => self.aliases.push(v.to_string()),
            "--ip" => self.ip = Some(v.to_string()),
            "--restart" => self.host["RestartPolicy"] = restart_policy(v),
            "--health-cmd" => {
                self.health.insert("Test".into(), json!(["CMD-SHELL", v]));
            }
            "--health-interval" | "--health-timeout" | "--health-start-period" => {
                let key = match f {
                    "--health-interval" => "Interval",
                    "--health-timeout" => "Timeout",
                    _ => "StartPeriod",
                };
                self.health.insert(key.into(), json!(ns(v)));
            }
            "--health-retries" => {
                self.health
                    .insert("Retries".into(), json!(v.parse::<u64>().unwrap_or(0)));
            }
            "--user" | "--hostname" | "--workdir" => {
                let key = match f {
                    "--user" => "User",
                    "--hostname" => "Hostname",
                    _ => "WorkingDir",
                };
                self.cfg.insert(key.into(), json!(v));
            }
            "--log-driver" => self.host["LogConfig"]["Type"] = json!(v),
            "--log-opt" => kv(&mut self.host["LogConfig"]["Config"], v),
            "--cap-add" => self.push_host("CapAdd", v),
            "--volumes-from" => self.push_host("VolumesFrom", v),
            "--cap-drop" => self.push_host("CapDrop", v),
            "--dns" => self.push_host("Dns", v),
            "--add-host" => self.push_host("ExtraHosts", v),
            "--memory" => self.host["Memory"] = json!(v.parse::<u64>().unwrap_or(0)),
            "--cpus" => self.host["NanoCpus"] = json!(nano(v)),
            "--stop-timeout" => {
                self.cfg
                    .insert("StopTimeout".into(), json!(v.parse::<u64>().unwrap_or(0)));
            }
            other => return Err(format!("fake: unknown create flag {other}")),
        }
        Ok(())
    }
}

fn create(d: &mut FakeDocker, a: &[&str]) -> Run {
    let mut it = a.iter().copied();
    let mut dr = Draft::new();
    let image = loop {
        let Some(f) = it.next() else {
            return fail("no image");
        };
        if !f.starts_with('-') {
            break f.to_string();
        }
        if dr.switch(f) {
            continue;
        }
        if let Err(e) = dr.flag(f, it.next().unwrap_or_default()) {
            return fail(e);
        }
    };
    let Draft {
        name,
        cfg,
        host,
        env,
        labels,
        exposed,
        anon,
        health,
        entrypoint,
        aliases,
        ip,
    } = dr;
    let cmd: Vec<String> = it.map(str::to_string).collect();
    if d.containers.contains_key(&name) {
        return fail(format!(
            "Conflict. The container name \"/{name}\" is already in use"
        ));
    }
    let Some(img) = d.images.get(&image).cloned() else {
        return fail(format!("No such image: {image}"));
    };
    let ic = &img["Config"];
    let mut env_list: Vec<Value> = ic["Env"].as_array().cloned().unwrap_or_default();
    for e in &env {
        set_env(&mut env_list, e);
    }
    let mut all_labels = ic["Labels"].as_object().cloned().unwrap_or_default();
    all_labels.extend(labels);
    let cmd_value = if !cmd.is_empty() {
        json!(cmd)
    } else if entrypoint.is_some() {
        Value::Null
    } else {
        ic["Cmd"].clone()
    };
    let mut c = json!({
        "Id": format!("c-{name}"), "Name": format!("/{name}"), "Image": img["Id"],
        "State": {"Running": false, "Status": "created"},
        "Config": {
            "Image": image, "Cmd": cmd_value,
            "Entrypoint": entrypoint.unwrap_or_else(|| ic["Entrypoint"].clone()),
            "Env": env_list, "Labels": all_labels,
            "ExposedPorts": if exposed.is_empty() { Value::Null } else { Value::Object(exposed) },
            "Volumes": if anon.is_empty() { Value::Null } else { Value::Object(anon) },
            "User": "", "Hostname": "c0ffee", "WorkingDir": "", "Tty": false, "OpenStdin": false,
            "Healthcheck": if health.is_empty() { Value::Null } else { Value::Object(health) },
        },
        "HostConfig": host,
        "NetworkSettings": {"Networks": {}},
    });
    for (k, v) in cfg {
        c["Config"][k] = v;
    }
    let mode = c["HostConfig"]["NetworkMode"]
        .as_str()
        .unwrap_or("bridge")
        .to_string();
    d.containers.insert(name.clone(), c);
    let (rc, _, e) = connect(d, &mode, &name, &aliases, ip.as_deref());
    if rc != 0 {
        d.containers.remove(&name);
        return (rc, String::new(), e);
    }
    ok(format!("c-{name}\n"))
}
