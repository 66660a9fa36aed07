//! `docker_container` on the fake engine: create, converge, each kind of
//! difference, check mode, states, pulls and the refused values.

use serde_json::{json, Value};

use super::*;
use crate::builtin::docker_common::fake::{self, image_doc};
use crate::DynModule;

fn web() -> Value {
    json!({
        "name": "web", "image": "herd/busybox:1", "command": "httpd -f -p 8080",
        "env": {"TZ": "UTC"}, "labels": {"app": "shop"},
        "published_ports": ["127.0.0.1:8080:8080", "9090"],
        "volumes": ["/srv/www:/www:ro", "data:/data", "/cache"],
        "restart_policy": "unless-stopped", "user": "nobody",
        "healthcheck": {"test": ["CMD", "wget", "-q", "http://localhost:8080/"], "interval": "30s", "retries": 3},
        "log_driver": "json-file", "log_options": {"max-size": "10m"},
        "memory": "64m", "cpus": 0.5, "init": true,
    })
}

#[test]
fn a_container_is_made_started_and_then_left_alone() {
    let mut h = fake::host();
    let (plan, out) = fake::converge(&DockerContainer, &mut h, &web());
    assert_eq!(
        plan.changes,
        [
            "create container web from herd/busybox:1",
            "start container web"
        ]
    );
    let c = &out.result["container"];
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(c["Config"]["Cmd"], json!(["httpd", "-f", "-p", "8080"]));
    assert_eq!(c["HostConfig"]["Memory"], 64 * 1024 * 1024);
    assert_eq!(
        c["Config"]["Healthcheck"]["Test"],
        json!(["CMD-SHELL", "wget -q http://localhost:8080/"])
    );
    assert!(out.changed);
}

#[test]
fn a_changed_option_recreates_and_an_image_label_or_env_does_not() {
    let mut h = fake::host();
    fake::converge(&DockerContainer, &mut h, &web());
    // Fewer labels and env than the container has (the image's) is fine.
    let mut fewer = web();
    fewer["labels"] = json!({});
    fewer["env"] = json!({});
    assert!(fake::plan(&DockerContainer, &mut h, &fewer).is_empty());
    let mut other = web();
    other["env"] = json!({"TZ": "Europe/Paris"});
    other["user"] = json!("root");
    let (plan, out) = fake::converge(&DockerContainer, &mut h, &other);
    assert_eq!(plan.changes, ["recreate container web (env, user)"]);
    assert_eq!(out.result["container"]["State"]["Running"], true);
    let stop = h
        .calls
        .iter()
        .position(|c| c[1] == "stop")
        .expect("stopped first");
    let rm = h.calls.iter().position(|c| c[1] == "rm").expect("removed");
    assert!(stop < rm);
}

#[test]
fn memory_cpus_and_restart_policy_are_updated_in_place() {
    let mut h = fake::host();
    fake::converge(&DockerContainer, &mut h, &web());
    let mut more = web();
    more["memory"] = json!("128m");
    more["restart_policy"] = json!("always");
    let (plan, _) = fake::converge(&DockerContainer, &mut h, &more);
    assert_eq!(
        plan.changes,
        ["update container web (restart_policy, memory)"]
    );
    // Check mode reports an update alone as no change, as the collection.
    assert!(plan.not_a_change);
    assert!(!h.calls.iter().any(|c| c[1] == "rm"), "{:?}", h.calls);
}

#[test]
fn a_rebuilt_image_recreates_unless_ignored() {
    let mut h = fake::host();
    fake::converge(&DockerContainer, &mut h, &web());
    h.images
        .insert("herd/busybox:1".into(), image_doc("herd/busybox:1", "new"));
    let mut ignore = web();
    ignore["comparisons"] = json!({"image": "ignore"});
    assert!(fake::plan(&DockerContainer, &mut h, &ignore).is_empty());
    let (plan, _) = fake::converge(&DockerContainer, &mut h, &web());
    assert_eq!(plan.changes, ["recreate container web (image)"]);
}

#[test]
fn comparisons_make_labels_strict() {
    let mut h = fake::host();
    fake::converge(
        &DockerContainer,
        &mut h,
        &json!({"name": "c", "image": "herd/busybox:1", "labels": {"a": "1"}}),
    );
    let strict = json!({"name": "c", "image": "herd/busybox:1", "labels": {"a": "1"}, "comparisons": {"labels": "strict"}});
    // The image's own label makes the container's labels more than asked.
    let plan = fake::plan(&DockerContainer, &mut h, &strict);
    assert_eq!(plan.changes, ["recreate container c (labels)"]);
}

#[test]
fn states_stop_start_and_remove() {
    let mut h = fake::host();
    let base = json!({"name": "c", "image": "herd/busybox:1", "command": ["sleep", "1000"]});
    fake::converge(&DockerContainer, &mut h, &base);
    let mut stopped = base.clone();
    stopped["state"] = json!("stopped");
    let (plan, out) = fake::converge(&DockerContainer, &mut h, &stopped);
    assert_eq!(plan.changes, ["stop container c"]);
    assert_eq!(out.result["container"]["State"]["Running"], false);
    let mut present = base.clone();
    present["state"] = json!("present");
    assert!(fake::plan(&DockerContainer, &mut h, &present).is_empty());
    let (plan, _) = fake::converge(&DockerContainer, &mut h, &base);
    assert_eq!(plan.changes, ["start container c"]);
    let absent = json!({"name": "c", "state": "absent"});
    let (plan, out) = fake::converge(&DockerContainer, &mut h, &absent);
    assert_eq!(plan.changes, ["remove container c"]);
    assert!(out.result.get("container").is_none());
    assert!(h.containers.is_empty());
}

#[test]
fn check_mode_changes_nothing() {
    let mut h = fake::host();
    let plan = fake::plan(&DockerContainer, &mut h, &web());
    assert!(!plan.is_empty());
    assert!(h.containers.is_empty());
    assert!(h.calls.iter().all(|c| c[2] == "inspect"), "{:?}", h.calls);
}

#[test]
fn networks_are_connected_in_place_and_the_first_is_the_mode() {
    let mut h = fake::host();
    for n in ["front", "back"] {
        fake::converge(
            &crate::builtin::docker_network::DockerNetwork,
            &mut h,
            &json!({"name": n}),
        );
    }
    let p = json!({"name": "c", "image": "herd/busybox:1", "networks": [{"name": "front", "aliases": ["www"]}]});
    let (_, out) = fake::converge(&DockerContainer, &mut h, &p);
    assert_eq!(
        out.result["container"]["HostConfig"]["NetworkMode"],
        "front"
    );
    let both = json!({"name": "c", "image": "herd/busybox:1", "networks": [{"name": "front", "aliases": ["www"]}, {"name": "back"}]});
    let (plan, _) = fake::converge(&DockerContainer, &mut h, &both);
    assert_eq!(plan.changes, ["connect container c to network back"]);
    let strict = json!({"name": "c", "image": "herd/busybox:1", "networks": [{"name": "front"}], "comparisons": {"networks": "strict"}});
    let (plan, _) = fake::converge(&DockerContainer, &mut h, &strict);
    assert_eq!(plan.changes, ["disconnect container c from network back"]);
}

#[test]
fn env_file_is_read_from_the_host_and_env_wins() {
    let mut h = fake::host();
    h.files
        .insert("/etc/app.env".into(), "# app\nA=1\nB=2\n".into());
    let p = json!({"name": "c", "image": "herd/busybox:1", "env_file": "/etc/app.env", "env": {"B": "3"}});
    let (_, out) = fake::converge(&DockerContainer, &mut h, &p);
    let env = &out.result["container"]["Config"]["Env"];
    assert!(env.as_array().expect("env").contains(&json!("A=1")));
    assert!(env.as_array().expect("env").contains(&json!("B=3")));
    let missing = json!({"name": "d", "image": "herd/busybox:1", "env_file": "/nope"});
    assert!(DynModule::plan(&DockerContainer, &missing, &mut h).is_err());
}

#[test]
fn a_missing_image_is_pulled_and_pull_always_changes_only_when_it_differs() {
    let mut h = fake::host();
    h.registry
        .insert("reg/app:1".into(), image_doc("reg/app:1", "one"));
    let p = json!({"name": "c", "image": "reg/app:1"});
    let (plan, out) = fake::converge(&DockerContainer, &mut h, &p);
    assert_eq!(plan.changes[0], "pull image reg/app:1");
    assert!(out.changed);
    let always = json!({"name": "c", "image": "reg/app:1", "pull": true});
    let plan = fake::plan(&DockerContainer, &mut h, &always);
    assert!(plan.not_a_change, "{:?}", plan.changes);
    let out = DynModule::apply(&DockerContainer, &always, plan, &mut h).expect("apply");
    assert!(!out.changed);
    h.registry
        .insert("reg/app:1".into(), image_doc("reg/app:1", "two"));
    let plan = fake::plan(&DockerContainer, &mut h, &always);
    let out = DynModule::apply(&DockerContainer, &always, plan, &mut h).expect("apply");
    assert!(out.changed);
    assert_eq!(out.result["container"]["Image"], "sha256:two");
    let never = json!({"name": "d", "image": "reg/none:1", "pull": "never"});
    assert!(DynModule::plan(&DockerContainer, &never, &mut h).is_err());
}

#[test]
fn refused_values_name_the_parameter() {
    let bad = [
        json!({"name": "c", "image": "i", "published_ports": ["a:b"]}),
        json!({"name": "c", "image": "i", "volumes": ["/a:/b:rx"]}),
        json!({"name": "c", "image": "i", "memory": "lots"}),
        json!({"name": "c", "image": "i", "restart_retries": 3}),
        json!({"name": "c", "image": "i", "detach": false}),
        json!({"name": "c", "image": "i", "env": {"A": 1}}),
        json!({"name": "c", "image": "i", "pull": "sometimes"}),
        json!({"name": "c", "image": "i", "nope": 1}),
        json!({"name": "c", "image": "i", "comparisons": {"colour": "strict"}}),
        json!({"name": "c", "image": "i", "comparisons": {"*": "allow_more_present"}}),
    ];
    let mut h = fake::host();
    for p in bad {
        assert!(
            DynModule::plan(&DockerContainer, &p, &mut h).is_err(),
            "{p}"
        );
    }
    assert!(DockerContainer
        .check_params(&json!({"name": "c", "ports": "80", "log_opt": {"a": "b"}, "expose": [53]}))
        .is_ok());
    let no_image =
        DynModule::plan(&DockerContainer, &json!({"name": "c"}), &mut h).expect_err("no image");
    assert!(no_image.to_string().contains("image"), "{no_image}");
}

#[test]
fn image_references_get_latest() {
    assert_eq!(image_ref("busybox"), "busybox:latest");
    assert_eq!(image_ref("localhost:5000/app"), "localhost:5000/app:latest");
    assert_eq!(image_ref("localhost:5000/app:2"), "localhost:5000/app:2");
    assert_eq!(image_ref("app@sha256:ab"), "app@sha256:ab");
}

/// `volumes_from` (afd-docker-flask's data container) is passed at create
/// and compared as a set, so a second run plans nothing.
#[test]
fn volumes_from_is_created_and_then_left_alone() {
    let mut h = fake::host();
    let mut params = web();
    params["volumes_from"] = json!("data");
    let (_, out) = fake::converge(&DockerContainer, &mut h, &params);
    assert_eq!(
        out.result["container"]["HostConfig"]["VolumesFrom"],
        json!(["data"])
    );
}
