//! `docker_network` (`community.docker.docker_network`): a Docker network
//! made or removed with the host's docker CLI, and the containers
//! connected to it.
//!
//! The plan inspects the network and every container named in `connected`
//! in one round trip and compares as the collection does: the driver, and
//! each option, label, IPAM setting and flag the task gives (what it does
//! not give is not compared; options and labels the network has beyond
//! the task's are allowed). A difference, or `force`, removes and makes the
//! network again (its containers disconnected first). Containers named in
//! `connected` that exist are connected; without `appends`, containers
//! not named are disconnected (a task naming none leaves them), as the
//! collection does. Apply runs the
//! commands and the final `inspect` in one more round trip.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::docker_common::{self as dc, de_opt_list, de_string_map, docker};
use crate::params::{de_bool, de_opt_bool};
use crate::{Host, Module, ModuleError, Outcome, Plan};

/// Whether the network should exist.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NetworkState {
    /// The network exists with the settings given.
    #[default]
    Present,
    /// The network does not exist (its containers are disconnected first).
    Absent,
}

/// Where a network lives.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NetworkScope {
    /// This engine only.
    Local,
    /// Every engine of the cluster.
    Global,
    /// A swarm network.
    Swarm,
}

/// One IPAM pool.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpamConfig {
    /// The pool's subnet in CIDR form.
    pub subnet: Option<String>,
    /// The range containers get addresses from, in CIDR form.
    pub iprange: Option<String>,
    /// The gateway address.
    pub gateway: Option<String>,
    /// Addresses the IPAM driver must not hand out, by host name.
    #[serde(default, deserialize_with = "de_string_map")]
    pub aux_addresses: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `docker_network`.
pub struct DockerNetworkParams {
    /// The network's name.
    #[serde(alias = "network_name")]
    pub name: String,
    /// Whether the network exists.
    #[serde(default)]
    pub state: NetworkState,
    /// The network driver; `bridge` when not given.
    pub driver: Option<String>,
    /// Driver options (`docker network create --opt`).
    #[serde(default, deserialize_with = "de_string_map")]
    pub driver_options: Option<BTreeMap<String, String>>,
    /// Remove and make the network again even when it matches.
    #[serde(default, deserialize_with = "de_bool")]
    pub force: bool,
    /// Only connect the `connected` containers; leave others connected.
    #[serde(default, alias = "incremental", deserialize_with = "de_bool")]
    pub appends: bool,
    /// Containers (names or IDs) to connect; without `appends`, the others
    /// are disconnected.
    #[serde(default, alias = "containers", deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub connected: Option<Vec<String>>,
    /// The IPAM driver.
    pub ipam_driver: Option<String>,
    /// IPAM driver options (compared whole).
    #[serde(default, deserialize_with = "de_string_map")]
    pub ipam_driver_options: Option<BTreeMap<String, String>>,
    /// IPAM pools.
    pub ipam_config: Option<Vec<IpamConfig>>,
    /// Enable IPv6 on the network.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub enable_ipv6: Option<bool>,
    /// No outside access (`--internal`).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub internal: Option<bool>,
    /// Labels the network must carry (others are allowed).
    #[serde(default, deserialize_with = "de_string_map")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The network's scope.
    pub scope: Option<NetworkScope>,
    /// Standalone containers may attach to a swarm network.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub attachable: Option<bool>,
}

/// The `docker_network` module.
pub struct DockerNetwork;

/// What the plan found and decided, for apply.
#[derive(Debug, serde::Serialize, Deserialize)]
struct NetPlan {
    recreate: bool,
    create: bool,
    connect: Vec<String>,
    disconnect: Vec<String>,
    /// Containers to disconnect before a remove.
    attached: Vec<String>,
}

impl DockerNetworkParams {
    fn driver(&self) -> &str {
        self.driver.as_deref().unwrap_or("bridge")
    }
}

/// Names of the containers the network lists.
fn attached(net: &Value) -> Vec<String> {
    dc::at(net, "Containers")
        .as_object()
        .map(|m| {
            m.values()
                .filter_map(|c| c["Name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn flag_differs(want: Option<bool>, have: &Value) -> bool {
    want.is_some_and(|w| w != have.as_bool().unwrap_or(false))
}

/// The settings that differ, as the collection names them.
fn differences(p: &DockerNetworkParams, net: &Value) -> Vec<String> {
    let mut d = Vec::new();
    if net["Driver"].as_str() != Some(p.driver()) {
        d.push("driver".to_string());
    }
    if let Some(opts) = &p.driver_options {
        let have = dc::string_map(net, "Options");
        d.extend(
            dc::missing_entries(opts, &have)
                .into_iter()
                .map(|k| format!("driver_options.{k}")),
        );
    }
    if let Some(drv) = &p.ipam_driver {
        if dc::at(net, "IPAM.Driver").as_str() != Some(drv) {
            d.push("ipam_driver".into());
        }
    }
    if let Some(opts) = &p.ipam_driver_options {
        if &dc::string_map(net, "IPAM.Options") != opts {
            d.push("ipam_driver_options".into());
        }
    }
    if let Some(pools) = p.ipam_config.as_ref().filter(|c| !c.is_empty()) {
        let have = dc::at(net, "IPAM.Config")
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (i, pool) in pools.iter().enumerate() {
            if !have.iter().any(|h| pool_matches(pool, h)) {
                d.push(format!("ipam_config[{i}]"));
            }
        }
    }
    if flag_differs(p.enable_ipv6, &net["EnableIPv6"]) {
        d.push("enable_ipv6".into());
    }
    if flag_differs(p.internal, &net["Internal"]) {
        d.push("internal".into());
    }
    if flag_differs(p.attachable, &net["Attachable"]) {
        d.push("attachable".into());
    }
    if let Some(scope) = p.scope {
        if Some(scope_word(scope)) != net["Scope"].as_str() {
            d.push("scope".into());
        }
    }
    if let Some(labels) = &p.labels {
        let have = dc::string_map(net, "Labels");
        d.extend(
            dc::missing_entries(labels, &have)
                .into_iter()
                .map(|k| format!("labels.{k}")),
        );
    }
    d
}

fn scope_word(s: NetworkScope) -> &'static str {
    match s {
        NetworkScope::Local => "local",
        NetworkScope::Global => "global",
        NetworkScope::Swarm => "swarm",
    }
}

/// Every setting the pool gives equals the network pool's.
fn pool_matches(pool: &IpamConfig, have: &Value) -> bool {
    let same = |want: &Option<String>, key: &str| {
        want.as_ref()
            .is_none_or(|w| have[key].as_str() == Some(w.as_str()))
    };
    let aux_same = pool
        .aux_addresses
        .as_ref()
        .is_none_or(|want| &dc::string_map(have, "AuxiliaryAddresses") == want);
    same(&pool.subnet, "Subnet")
        && same(&pool.iprange, "IPRange")
        && same(&pool.gateway, "Gateway")
        && aux_same
}

fn create_argv(p: &DockerNetworkParams) -> Vec<String> {
    let mut a = docker(&["network", "create", "--driver", p.driver()]);
    for (k, v) in p.driver_options.iter().flatten() {
        a.extend(["--opt".into(), format!("{k}={v}")]);
    }
    if let Some(d) = &p.ipam_driver {
        a.extend(["--ipam-driver".into(), d.clone()]);
    }
    for (k, v) in p.ipam_driver_options.iter().flatten() {
        a.extend(["--ipam-opt".into(), format!("{k}={v}")]);
    }
    for pool in p.ipam_config.iter().flatten() {
        for (flag, v) in [
            ("--subnet", &pool.subnet),
            ("--ip-range", &pool.iprange),
            ("--gateway", &pool.gateway),
        ] {
            if let Some(v) = v {
                a.extend([flag.to_string(), v.clone()]);
            }
        }
        for (k, v) in pool.aux_addresses.iter().flatten() {
            a.extend(["--aux-address".into(), format!("{k}={v}")]);
        }
    }
    for (flag, on) in [
        ("--ipv6", p.enable_ipv6),
        ("--internal", p.internal),
        ("--attachable", p.attachable),
    ] {
        if on == Some(true) {
            a.push(flag.into());
        }
    }
    if let Some(s) = p.scope {
        a.extend(["--scope".into(), scope_word(s).into()]);
    }
    for (k, v) in p.labels.iter().flatten() {
        a.extend(["--label".into(), format!("{k}={v}")]);
    }
    a.push(p.name.clone());
    a
}

impl Module for DockerNetwork {
    const NAME: &'static str = "docker_network";
    const DOC_SHORT: &'static str = "Manage a Docker network and the containers connected to it.";
    const DOC_LONG: &'static str = r##"Uses the host's `docker` CLI. The network is compared with the task as
`community.docker.docker_network` compares it: the driver, and every option,
label, IPAM setting and flag the task gives; what the network has beyond the
task's options and labels is allowed. A difference, or `force: true`, removes
the network (disconnecting its containers) and makes it again.

Containers named in `connected` that exist are connected. Without
`appends: true` every other container is disconnected, as the collection
does; a task without `connected` leaves the attached containers as they
are (and connects them again to a recreated network)."##;
    const DOC_EXAMPLE: &'static str = r##"- community.docker.docker_network:
    name: backend
    ipam_config:
      - subnet: 172.30.0.0/24
    labels:
      app: shop
- docker_network:
    name: backend
    connected: [api]
    appends: true
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[(
        "network",
        "The network's `docker network inspect` data (absent after `state: absent`).",
    )];
    type Params = DockerNetworkParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let connected = p.connected.clone().unwrap_or_default();
        let mut cmds = vec![docker(&["network", "inspect", &p.name])];
        if p.state == NetworkState::Present {
            cmds.extend(
                connected
                    .iter()
                    .map(|c| docker(&["container", "inspect", c])),
            );
        }
        let sections = dc::probe(host, &cmds)?;
        let net = sections[0].inspected("inspect the network")?;
        let mut plan = Plan::default();
        let mut state = NetPlan {
            recreate: false,
            create: false,
            connect: Vec::new(),
            disconnect: Vec::new(),
            attached: net.as_ref().map(attached).unwrap_or_default(),
        };
        if p.state == NetworkState::Absent {
            if net.is_some() {
                plan.changes.push(format!("remove network {}", p.name));
            }
            plan.keep_state(&state)?;
            return Ok(plan);
        }
        match &net {
            None => {
                state.create = true;
                plan.changes.push(format!("create network {}", p.name));
            }
            Some(n) => {
                let diff = differences(p, n);
                if p.force || !diff.is_empty() {
                    state.recreate = true;
                    state.create = true;
                    let why = if diff.is_empty() {
                        "force".to_string()
                    } else {
                        diff.join(", ")
                    };
                    plan.changes
                        .push(format!("recreate network {} ({why})", p.name));
                }
            }
        }
        // A recreated network starts empty: every listed container is
        // connected again.
        let now: Vec<String> = if state.recreate {
            Vec::new()
        } else {
            state.attached.clone()
        };
        for (c, sec) in connected.iter().zip(&sections[1..]) {
            let exists = sec.inspected("inspect a container")?.is_some();
            if exists && !now.contains(c) {
                plan.changes.push(format!("connect container {c}"));
                state.connect.push(c.clone());
            }
        }
        // Without `connected` the collection takes the containers attached
        // now as the list: none is disconnected, and a recreated network
        // gets them back.
        let implicit = connected.is_empty();
        if implicit && state.recreate {
            for c in state.attached.clone() {
                plan.changes.push(format!("connect container {c}"));
                state.connect.push(c);
            }
        }
        if !p.appends && !implicit {
            for c in now.iter().filter(|c| !connected.contains(c)) {
                plan.changes.push(format!("disconnect container {c}"));
                state.disconnect.push(c.clone());
            }
        }
        if let Some(n) = net {
            plan.result.insert("network".into(), n);
        }
        plan.keep_state(&state)?;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let st: NetPlan = plan.state_as()?;
        let mut cmds = Vec::new();
        if p.state == NetworkState::Absent || st.recreate {
            for c in &st.attached {
                cmds.push(docker(&["network", "disconnect", "--force", &p.name, c]));
            }
            cmds.push(docker(&["network", "rm", &p.name]));
        }
        let mut result = Map::new();
        if p.state == NetworkState::Absent {
            dc::apply(host, "remove the network", &cmds, None, None)?;
        } else {
            if st.create {
                cmds.push(create_argv(p));
            }
            for c in &st.connect {
                cmds.push(docker(&["network", "connect", &p.name, c]));
            }
            for c in &st.disconnect {
                cmds.push(docker(&["network", "disconnect", "--force", &p.name, c]));
            }
            let inspect = docker(&["network", "inspect", &p.name]);
            let out = dc::apply(host, "change the network", &cmds, Some(&inspect), None)?;
            let net = dc::inspected("inspect the network", &out)?.unwrap_or(Value::Null);
            result.insert("network".into(), net);
        }
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::docker_common::fake::{self, FakeDocker};
    use crate::testing::FakeHost;
    use crate::DynModule;

    fn converge(h: &mut FakeHost<FakeDocker>, params: &Value) -> (Plan, Outcome) {
        fake::converge(&DockerNetwork, h, params)
    }

    #[test]
    fn a_network_is_made_then_left_alone() {
        let mut h = fake::host();
        let params = json!({"name": "backend", "labels": {"app": "shop"},
            "ipam_config": [{"subnet": "172.30.0.0/24", "gateway": "172.30.0.1"}]});
        let (plan, out) = converge(&mut h, &params);
        assert_eq!(plan.changes, ["create network backend"]);
        assert_eq!(out.result["network"]["Labels"]["app"], "shop");
        assert_eq!(
            out.result["network"]["IPAM"]["Config"][0]["Subnet"],
            "172.30.0.0/24"
        );
        let create = h
            .scripts
            .iter()
            .find(|s| s.contains("network create"))
            .expect("created");
        assert!(
            create.contains("--subnet 172.30.0.0/24 --gateway 172.30.0.1"),
            "{create}"
        );
    }

    #[test]
    fn a_changed_setting_recreates_and_extra_labels_are_allowed() {
        let mut h = fake::host();
        converge(
            &mut h,
            &json!({"name": "n", "labels": {"a": "1", "b": "2"}}),
        );
        let plan = fake::plan(
            &DockerNetwork,
            &mut h,
            &json!({"name": "n", "labels": {"a": "1"}}),
        );
        assert!(plan.is_empty(), "{:?}", plan.changes);
        let (plan, _) = converge(&mut h, &json!({"name": "n", "internal": true}));
        assert_eq!(plan.changes, ["recreate network n (internal)"]);
    }

    #[test]
    fn containers_are_connected_and_others_disconnected_unless_appends() {
        let mut h = fake::host();
        h.add_container("web");
        h.add_container("db");
        converge(
            &mut h,
            &json!({"name": "n", "connected": ["web", "db", "gone"]}),
        );
        let plan = fake::plan(
            &DockerNetwork,
            &mut h,
            &json!({"name": "n", "connected": ["web"], "appends": true}),
        );
        assert!(plan.is_empty(), "{:?}", plan.changes);
        let (plan, out) = converge(&mut h, &json!({"name": "n", "containers": "web"}));
        assert_eq!(plan.changes, ["disconnect container db"]);
        assert_eq!(attached(&out.result["network"]), ["web"]);
        // No `connected`: the attached containers stay.
        let plan = fake::plan(&DockerNetwork, &mut h, &json!({"name": "n"}));
        assert!(plan.is_empty(), "{:?}", plan.changes);
    }

    #[test]
    fn check_mode_changes_nothing_and_absent_removes() {
        let mut h = fake::host();
        let plan = fake::plan(&DockerNetwork, &mut h, &json!({"name": "n"}));
        assert_eq!(plan.changes, ["create network n"]);
        assert!(h.networks.is_empty());
        converge(&mut h, &json!({"name": "n"}));
        let (plan, out) = converge(&mut h, &json!({"name": "n", "state": "absent"}));
        assert_eq!(plan.changes, ["remove network n"]);
        assert!(out.result.get("network").is_none());
        assert!(h.networks.is_empty());
    }

    #[test]
    fn unknown_parameters_and_bad_choices_are_refused() {
        assert!(DockerNetwork
            .check_params(&json!({"name": "n", "nope": 1}))
            .is_err());
        assert!(DockerNetwork
            .check_params(&json!({"name": "n", "scope": "galaxy"}))
            .is_err());
        assert!(DockerNetwork
            .check_params(&json!({"network_name": "n", "incremental": "yes"}))
            .is_ok());
    }

    #[test]
    fn a_host_without_docker_is_an_error() {
        let mut h = FakeHost::new().answer(
            crate::testing::Match::when(|_| true),
            0,
            "@@herd-docker\nsh: docker: not found\n@@herd-docker-rc 127\n",
            "",
        );
        let err =
            DynModule::plan(&DockerNetwork, &json!({"name": "n"}), &mut h).expect_err("no docker");
        assert!(err.to_string().contains("docker: not found"), "{err}");
    }
}
