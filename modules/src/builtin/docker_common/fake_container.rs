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

fn create(d: &mut FakeDocker, a: &[&str]) -> Run {
    let mut it = a.iter().copied();
    let mut name = String::new();
    let mut cfg = Map::new();
    let mut host = json!({
        "Binds": null, "Mounts": [], "PortBindings": {}, "NetworkMode": "bridge",
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "Init": null,
        "Privileged": false, "ReadonlyRootfs": false, "AutoRemove": false,
        "CapAdd": null, "CapDrop": null, "Dns": [], "ExtraHosts": null,
        "LogConfig": {"Type": "json-file", "Config": {}}, "Memory": 0, "NanoCpus": 0,
    });
    let mut env: Vec<(bool, String)> = Vec::new();
    let mut labels = Map::new();
    let mut exposed = Map::new();
    let mut anon = Map::new();
    let mut health = Map::new();
    let mut entrypoint: Option<Value> = None;
    let mut aliases = Vec::new();
    let mut ip = None;
    let image = loop {
        let Some(f) = it.next() else {
            return fail("no image");
        };
        if !f.starts_with('-') {
            break f.to_string();
        }
        if matches!(
            f,
            "--init"
                | "--privileged"
                | "--read-only"
                | "--tty"
                | "--interactive"
                | "--rm"
                | "--no-healthcheck"
        ) {
            match f {
                "--init" => host["Init"] = json!(true),
                "--privileged" => host["Privileged"] = json!(true),
                "--read-only" => host["ReadonlyRootfs"] = json!(true),
                "--tty" => {
                    cfg.insert("Tty".into(), json!(true));
                }
                "--interactive" => {
                    cfg.insert("OpenStdin".into(), json!(true));
                }
                "--rm" => host["AutoRemove"] = json!(true),
                _ => {
                    health.insert("Test".into(), json!(["NONE"]));
                }
            }
            continue;
        }
        let v = it.next().unwrap_or_default();
        match f {
            "--name" => name = v.to_string(),
            "--entrypoint" => entrypoint = Some(json!([v])),
            "--env" => env.push((true, v.to_string())),
            "--label" => {
                let (k, val) = v.split_once('=').unwrap_or((v, ""));
                labels.insert(k.into(), json!(val));
            }
            "--publish" => {
                let (rest, cport) = v.rsplit_once(':').unwrap_or(("", v));
                let (hip, hport) = rest.split_once(':').unwrap_or(("", rest));
                let key = if cport.contains('/') {
                    cport.to_string()
                } else {
                    format!("{cport}/tcp")
                };
                exposed.insert(key.clone(), json!({}));
                let list = host["PortBindings"][&key]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut list = list;
                list.push(json!({"HostIp": hip, "HostPort": hport}));
                host["PortBindings"][&key] = json!(list);
            }
            "--expose" => {
                exposed.insert(v.to_string(), json!({}));
            }
            "--volume" => {
                if v.contains(':') {
                    let mut b = host["Binds"].as_array().cloned().unwrap_or_default();
                    b.push(json!(v));
                    host["Binds"] = json!(b);
                } else {
                    anon.insert(v.to_string(), json!({}));
                }
            }
            "--mount" => {
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
                if let Some(a) = host["Mounts"].as_array_mut() {
                    a.push(m);
                }
            }
            "--network" => host["NetworkMode"] = json!(v),
            "--network-alias" => aliases.push(v.to_string()),
            "--ip" => ip = Some(v.to_string()),
            "--restart" => host["RestartPolicy"] = restart_policy(v),
            "--health-cmd" => {
                health.insert("Test".into(), json!(["CMD-SHELL", v]));
            }
            "--health-interval" => {
                health.insert("Interval".into(), json!(ns(v)));
            }
            "--health-timeout" => {
                health.insert("Timeout".into(), json!(ns(v)));
            }
            "--health-start-period" => {
                health.insert("StartPeriod".into(), json!(ns(v)));
            }
            "--health-retries" => {
                health.insert("Retries".into(), json!(v.parse::<u64>().unwrap_or(0)));
            }
            "--user" => {
                cfg.insert("User".into(), json!(v));
            }
            "--hostname" => {
                cfg.insert("Hostname".into(), json!(v));
            }
            "--workdir" => {
                cfg.insert("WorkingDir".into(), json!(v));
            }
            "--log-driver" => host["LogConfig"]["Type"] = json!(v),
            "--log-opt" => kv(&mut host["LogConfig"]["Config"], v),
            "--cap-add" | "--cap-drop" | "--dns" | "--add-host" => {
                let key = match f {
                    "--cap-add" => "CapAdd",
                    "--cap-drop" => "CapDrop",
                    "--dns" => "Dns",
                    _ => "ExtraHosts",
                };
                let mut l = host[key].as_array().cloned().unwrap_or_default();
                l.push(json!(v));
                host[key] = json!(l);
            }
            "--memory" => host["Memory"] = json!(v.parse::<u64>().unwrap_or(0)),
            "--cpus" => host["NanoCpus"] = json!(nano(v)),
            "--stop-timeout" => {
                cfg.insert("StopTimeout".into(), json!(v.parse::<u64>().unwrap_or(0)));
            }
            other => return fail(format!("fake: unknown create flag {other}")),
        }
    };
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
    for (_, e) in &env {
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
