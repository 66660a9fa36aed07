//! The executor's behaviour on local hosts: failure isolation, unreachable
//! hosts, failure limits, serial batches, strategies, handlers, run_once,
//! retries, includes, loops, variable precedence, environment, no_log.

use crate::support::{run_in, write_files};

const TWO_HOSTS: &str = "[pair]\na ansible_connection=local\nb ansible_connection=local\n";
const THREE_HOSTS: &str =
    "[trio]\na ansible_connection=local\nb ansible_connection=local\nc ansible_connection=local\n";

#[test]
fn a_failing_host_does_not_stop_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_in(
        dir.path(),
        TWO_HOSTS,
        "- hosts: pair\n  gather_facts: no\n  tasks:\n    - name: fail on a\n      fail:\n        msg: boom\n      when: inventory_hostname == 'a'\n    - name: after\n      debug:\n        msg: still here\n",
        &[],
    )
    .expect_code(2);
    assert_eq!(run.stat("a", "failed"), 1);
    assert_eq!(run.stat("b", "failed"), 0);
    let after: Vec<_> = run
        .results("after")
        .iter()
        .map(|r| r["host"].clone())
        .collect();
    assert_eq!(after, vec!["b"]);
    let fail = run.results("fail on a");
    assert_eq!(
        fail.iter().find(|r| r["host"] == "a").expect("a")["msg"],
        "boom"
    );
}

#[test]
fn an_unreachable_host_exits_4_and_the_others_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_in(
        dir.path(),
        "[mixed]\nok ansible_connection=local\nfar ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1\n",
        "- hosts: mixed\n  gather_facts: no\n  tasks:\n    - name: touch nothing\n      command: 'true'\n    - name: after\n      command: 'true'\n",
        &[],
    )
    .expect_code(4);
    assert_eq!(run.stat("far", "unreachable"), 1);
    assert_eq!(run.stat("ok", "changed"), 2);
    assert_eq!(run.results("after").len(), 1);
}

#[test]
fn any_errors_fatal_stops_every_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_in(
        dir.path(),
        TWO_HOSTS,
        "- hosts: pair\n  gather_facts: no\n  any_errors_fatal: yes\n  tasks:\n    - fail:\n        msg: boom\n      when: inventory_hostname == 'a'\n    - name: after\n      debug:\n        msg: x\n",
        &[],
    )
    .expect_code(2);
    assert!(run.results("after").is_empty());
}

#[test]
fn max_fail_percentage_stops_the_play() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_in(
        dir.path(),
        THREE_HOSTS,
        "- hosts: trio\n  gather_facts: no\n  max_fail_percentage: 20\n  tasks:\n    - fail:\n      when: inventory_hostname == 'a'\n    - name: after\n      debug:\n        msg: x\n",
        &[],
    )
    .expect_code(2);
    assert!(run.results("after").is_empty());
    let run = run_in(
        dir.path(),
        THREE_HOSTS,
        "- hosts: trio\n  gather_facts: no\n  max_fail_percentage: 50\n  tasks:\n    - fail:\n      when: inventory_hostname == 'a'\n    - name: after\n      debug:\n        msg: x\n",
        &[],
    )
    .expect_code(2);
    assert_eq!(run.results("after").len(), 2);
}

#[test]
fn serial_runs_batches_and_free_runs_every_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_in(
        dir.path(),
        THREE_HOSTS,
        "- hosts: trio\n  gather_facts: no\n  serial: [1, 2]\n  tasks:\n    - name: one\n      debug:\n        msg: x\n",
        &[],
    )
    .expect_code(0);
    let batches: Vec<usize> = run
        .events()
        .iter()
        .filter(|e| e["event"] == "task_start")
        .map(|e| e["hosts"].as_array().map(std::vec::Vec::len).unwrap_or(0))
        .collect();
    assert_eq!(batches, vec![1, 2]);
    let run = run_in(
        dir.path(),
        THREE_HOSTS,
        "- hosts: trio\n  gather_facts: no\n  strategy: free\n  tasks:\n    - name: one\n      debug:\n        msg: x\n    - name: two\n      debug:\n        msg: y\n",
        &[],
    )
    .expect_code(0);
    assert_eq!(run.results("two").len(), 3);
}

#[test]
fn handlers_run_once_per_flush_by_name_and_listen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let playbook = format!(
        r#"- hosts: pair
  gather_facts: no
  tasks:
    - name: change one
      command: 'true'
      notify: restart app
    - name: change two
      command: 'true'
      notify: [restart app, web changed]
    - meta: flush_handlers
    - name: after flush
      command: 'true'
      notify: restart app
      when: inventory_hostname == 'b'
  handlers:
    - name: restart app
      shell: echo {{{{ inventory_hostname }}}} >> {out}/restarts
    - name: reload web
      listen: web changed
      shell: echo {{{{ inventory_hostname }}}} >> {out}/reloads
"#,
        out = out.display()
    );
    std::fs::create_dir_all(&out).expect("out dir");
    run_in(dir.path(), TWO_HOSTS, &playbook, &[]).expect_code(0);
    let mut restarts: Vec<String> = std::fs::read_to_string(out.join("restarts"))
        .expect("restarts")
        .lines()
        .map(str::to_string)
        .collect();
    restarts.sort();
    assert_eq!(
        restarts,
        vec!["a", "b", "b"],
        "once per flush point per host"
    );
    let mut reloads: Vec<String> = std::fs::read_to_string(out.join("reloads"))
        .expect("reloads")
        .lines()
        .map(str::to_string)
        .collect();
    reloads.sort();
    assert_eq!(reloads, vec!["a", "b"]);
}

#[test]
fn force_handlers_run_for_hosts_that_failed_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("handled");
    let playbook = format!(
        "- hosts: pair\n  gather_facts: no\n  tasks:\n    - command: 'true'\n      notify: h\n    - fail:\n      when: inventory_hostname == 'a'\n  handlers:\n    - name: h\n      shell: echo {{{{ inventory_hostname }}}} >> {}\n",
        marker.display()
    );
    run_in(dir.path(), TWO_HOSTS, &playbook, &[]).expect_code(2);
    assert_eq!(std::fs::read_to_string(&marker).expect("marker"), "b\n");
    std::fs::remove_file(&marker).expect("rm");
    run_in(dir.path(), TWO_HOSTS, &playbook, &["--force-handlers"]).expect_code(2);
    let mut hosts: Vec<String> = std::fs::read_to_string(&marker)
        .expect("marker")
        .lines()
        .map(str::to_string)
        .collect();
    hosts.sort();
    assert_eq!(hosts, vec!["a", "b"]);
}

#[test]
fn run_once_registers_for_every_host_and_until_retries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = dir.path().join("counter");
    let playbook = format!(
        r#"- hosts: pair
  gather_facts: no
  tasks:
    - name: once
      shell: echo from-{{{{ inventory_hostname }}}}
      register: once_out
      run_once: true
    - name: both see it
      assert:
        that: once_out.stdout == 'from-a'
    - name: count up
      shell: echo x >> {c}-{{{{ inventory_hostname }}}}; wc -l < {c}-{{{{ inventory_hostname }}}}
      register: n
      until: n.stdout | int >= 3
      retries: 5
      delay: 0
    - name: gave up
      shell: 'false'
      register: never
      until: never.rc == 0
      retries: 2
      delay: 0
      ignore_errors: yes
"#,
        c = counter.display()
    );
    let run = run_in(dir.path(), TWO_HOSTS, &playbook, &[]).expect_code(0);
    assert_eq!(run.results("once").len(), 1);
    assert_eq!(run.results("both see it").len(), 2);
    let count = std::fs::read_to_string(format!("{}-a", counter.display())).expect("counter");
    assert_eq!(count.lines().count(), 3);
    assert_eq!(run.stat("a", "ignored"), 1);
}

#[test]
fn include_tasks_loops_and_registered_loop_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[(
            "tasks/extra.yml",
            "- name: included\n  debug:\n    msg: 'included for {{ inventory_hostname }} with {{ flavour }}'\n",
        )],
    );
    let playbook = r#"- hosts: pair
  gather_facts: no
  vars:
    flavour: vanilla
    which: extra
  tasks:
    - name: include by template
      include_tasks: "tasks/{{ which }}.yml"
    - name: loop with control
      debug:
        msg: "{{ idx }}={{ pkg.name }}"
      loop: [{name: nginx}, {name: curl}]
      loop_control:
        loop_var: pkg
        index_var: idx
        label: "{{ pkg.name }}"
      register: looped
    - name: with_items flattens one level
      debug:
        msg: "{{ item }}"
      with_items: [[1, 2], 3]
      register: flat
    - name: results are registered
      assert:
        that:
          - looped.results | length == 2
          - looped.results[1].msg == '1=curl'
          - flat.results | map(attribute='item') | list == [1, 2, 3]
"#;
    let run = run_in(dir.path(), TWO_HOSTS, playbook, &[]).expect_code(0);
    let included = run.results("included");
    assert_eq!(included.len(), 2);
    assert_eq!(
        included[0]["output"]["msg"]
            .as_str()
            .map(|s| s.ends_with("with vanilla")),
        Some(true)
    );
    let items: Vec<String> = run
        .results("loop with control")
        .iter()
        .filter(|r| r["host"] == "a")
        .map(|r| r["item"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(items, vec!["nginx", "curl"]);
    assert_eq!(run.results("results are registered").len(), 2);
}

#[test]
fn extra_vars_win_and_lazy_vars_see_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), &[("vars.yml", "port: 9200\n")]);
    let playbook = r#"- hosts: a
  gather_facts: no
  vars:
    port: 80
    url: "http://{{ inventory_hostname }}:{{ port }}/"
  tasks:
    - name: show
      debug:
        msg: "{{ url }}"
"#;
    let run = run_in(dir.path(), TWO_HOSTS, playbook, &["-e", "port=8080"]).expect_code(0);
    assert_eq!(run.results("show")[0]["output"]["msg"], "http://a:8080/");
    let run = run_in(dir.path(), TWO_HOSTS, playbook, &["-e", "@vars.yml"]).expect_code(0);
    assert_eq!(run.results("show")[0]["output"]["msg"], "http://a:9200/");
    let run = run_in(dir.path(), TWO_HOSTS, playbook, &["-e", "{\"port\": 1}"]).expect_code(0);
    assert_eq!(run.results("show")[0]["output"]["msg"], "http://a:1/");
}

#[test]
fn set_fact_is_visible_through_hostvars_and_environment_reaches_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let playbook = r#"- hosts: pair
  gather_facts: yes
  tasks:
    - set_fact:
        token: "t-{{ inventory_hostname }}"
    - name: read the other host
      debug:
        msg: "{{ hostvars['b']['token'] }} {{ groups['pair'] | join(',') }} {{ ansible_hostname is defined }}"
    - name: env
      shell: echo "$GREETING"
      environment:
        GREETING: "hello {{ inventory_hostname }}"
      register: env_out
    - assert:
        that: env_out.stdout == 'hello ' ~ inventory_hostname
"#;
    let run = run_in(dir.path(), TWO_HOSTS, playbook, &[]).expect_code(0);
    assert_eq!(
        run.results("read the other host")[0]["output"]["msg"],
        "t-b a,b True"
    );
}

#[test]
fn no_log_hides_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let playbook = "- hosts: a\n  gather_facts: no\n  tasks:\n    - name: secret\n      shell: echo hunter2; exit 3\n      no_log: true\n";
    let run = run_in(dir.path(), TWO_HOSTS, playbook, &[]).expect_code(2);
    assert!(!run.stdout().contains("hunter2"), "{}", run.stdout());
    assert!(run.results("secret")[0]["msg"]
        .as_str()
        .unwrap_or("")
        .contains("no_log"));
}

/// `playbook_dir` is absolute, as in Ansible, also for a playbook named
/// without a directory: `{{ playbook_dir }}/out` stays under it.
#[test]
fn playbook_dir_is_absolute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_in(
        dir.path(),
        "[one]\na ansible_connection=local\n",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: show\n      debug: msg=\"{{ playbook_dir }}\"\n",
        &[],
    )
    .expect_code(0);
    let shown = run.results("show")[0]["output"]["msg"].clone();
    let want = dir.path().canonicalize().expect("canonical tempdir");
    let got = std::path::PathBuf::from(shown.as_str().unwrap_or_default());
    assert!(got.is_absolute(), "playbook_dir {shown}");
    assert_eq!(got.canonicalize().ok(), Some(want), "playbook_dir {shown}");
}

/// `connection` on a task or a block, and `ansible_connection` in task
/// vars, decide the transport per task as in Ansible: a host reached by ssh
/// on a closed port runs those tasks locally, and the task without them is
/// unreachable.
#[test]
fn task_and_block_connection_and_task_vars_pick_the_transport() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_in(
        dir.path(),
        "far ansible_host=127.0.0.1 ansible_port=1\n",
        "- hosts: far\n  gather_facts: no\n  tasks:\n\
         \x20   - name: task keyword\n      command: 'true'\n      connection: local\n\
         \x20   - name: section\n      connection: local\n      block:\n\
         \x20       - name: block keyword\n          command: 'true'\n\
         \x20   - name: task variable\n      command: 'true'\n      vars:\n        ansible_connection: local\n\
         \x20   - name: over ssh\n      command: 'true'\n",
        &[],
    )
    .expect_code(4);
    assert_eq!(run.stat("far", "changed"), 3, "{}", run.stdout());
    assert_eq!(run.stat("far", "unreachable"), 1, "{}", run.stdout());
    assert_eq!(run.result("over ssh", "far")["status"], "unreachable");
}

/// `connection` on a `roles:` entry reaches every task of the role.
#[test]
fn a_role_entry_connection_applies_to_the_role_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[(
            "roles/here/tasks/main.yml",
            "- name: in the role\n  command: 'true'\n",
        )],
    );
    let run = run_in(
        dir.path(),
        "far ansible_host=127.0.0.1 ansible_port=1\n",
        "- hosts: far\n  gather_facts: no\n  roles:\n    - role: here\n      connection: local\n",
        &[],
    )
    .expect_code(0);
    assert_eq!(run.stat("far", "changed"), 1, "{}", run.stdout());
}

/// A command that ran and exited non-zero changed the host, as Ansible
/// reports it: `changed: true` in the failed result, counted when the
/// failure is ignored, and a change when `failed_when` clears the failure
/// (unless `changed_when` says otherwise). Counts from ansible-playbook
/// 2.18 on the same tasks: changed=2 ignored=2, every task ok.
#[test]
fn a_failed_command_still_counts_as_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_in(
        dir.path(),
        "[one]\na ansible_connection=local\n",
        r#"- hosts: one
  gather_facts: no
  tasks:
    - command: /bin/false
      register: r
      failed_when: false
    - command: /bin/true
      register: s
      failed_when: true
      ignore_errors: true
    - command: /bin/false
      register: t
      changed_when: false
      ignore_errors: true
    - name: registered
      debug:
        msg: "{{ [r.changed, r.failed, s.changed, s.failed, t.changed, t.failed] | join(' ') }}"
"#,
        &[],
    )
    .expect_code(0);
    assert_eq!(
        run.result("registered", "a")["output"]["msg"],
        "True False True True False True"
    );
    assert_eq!(run.stat("a", "changed"), 2);
    assert_eq!(run.stat("a", "ignored"), 2);
    assert_eq!(run.stat("a", "ok"), 4);
}

/// A module without check mode in Ansible (`uri`: `check_mode: support:
/// none`) is skipped under `--check` without touching the host (nothing
/// listens on the port it names), with Ansible's message; `check_mode:
/// false` on the task still runs it.
#[test]
fn check_mode_skips_a_module_that_has_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run_in(
        dir.path(),
        "[one]\na ansible_connection=local\n",
        "- hosts: one\n  gather_facts: no\n  tasks:\n    - name: request\n      uri:\n        url: http://127.0.0.1:9/\n      register: r\n    - name: show\n      debug:\n        msg: \"{{ r.skipped | default(false) }}\"\n",
        &["--check"],
    )
    .expect_code(0);
    let request = &run.results("request")[0];
    assert_eq!(request["status"], "skipped");
    assert_eq!(
        request["msg"],
        "remote module (uri) does not support check mode"
    );
    assert_eq!(run.results("show")[0]["output"]["msg"], true);
}
