//! `async`/`poll` and `async_status` over SSH on a fleet host (`herd-03`,
//! shared: every path here is the test's own): a fire-and-forget job
//! outlives the connection and `herd` itself, `async_status` follows a job
//! until it is done, and a polled job past its limit fails with Ansible's
//! message and is killed on the host.

use std::time::{Duration, Instant};

use crate::support::fleet::fleet;
use crate::support::write_files;

const HOST: &str = "herd-03";

#[test]
fn async_jobs_run_detached_over_ssh_and_are_killed_at_their_limit() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    let tag = format!("/tmp/herd-async-{}", std::process::id());
    let inv = f
        .inventory()
        .group("box")
        .root("box03", HOST, "")
        .write(dir.path(), "inventory.ini");
    let play = format!(
        "- hosts: box\n  gather_facts: no\n  tasks:\n\
         \x20   - name: start\n      shell: sleep 1; mkdir -p {tag}; echo job-out; echo job-err >&2\n      async: 30\n      poll: 0\n      register: job\n\
         \x20   - name: wait\n      async_status: {{jid: \"{{{{ job.ansible_job_id }}}}\"}}\n      register: st\n      until: st.finished\n      retries: 20\n      delay: 1\n\
         \x20   - name: show\n      debug: {{msg: \"{{{{ st.rc }}}} {{{{ st.stdout }}}} {{{{ st.stderr }}}}\"}}\n\
         \x20   - name: too slow\n      command: sleep 37\n      async: 2\n      poll: 1\n      ignore_errors: true\n\
         \x20   - name: outlives herd\n      shell: sleep 3; touch {tag}/late\n      async: 30\n      poll: 0\n"
    );
    write_files(dir.path(), &[("pb.yml", &play)]);
    let run = f
        .herd()
        .playbook(dir.path().join("pb.yml"))
        .inventory(&inv)
        .current_dir(dir.path())
        .run()
        .expect_code(0);
    assert_eq!(run.result("start", "box03")["status"], "changed");
    assert_eq!(run.result("wait", "box03")["status"], "changed");
    assert_eq!(
        run.result("show", "box03")["output"]["msg"],
        "0 job-out job-err"
    );
    let slow = run.result("too slow", "box03");
    assert_eq!(slow["status"], "ignored", "{slow}");
    assert_eq!(
        slow["msg"],
        "async task did not complete within the requested time - 2s"
    );
    // The job's watcher killed it at its limit.
    let gone = Instant::now();
    while f.ssh(HOST, "pgrep -x -f 'sleep 37'").status.success() {
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "the job past its limit still runs"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // herd has exited; the last job finishes on its own.
    let started = Instant::now();
    while !f.ssh(HOST, &format!("test -e {tag}/late")).status.success() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the fire-and-forget job did not outlive herd"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    f.ssh_ok(HOST, &format!("rm -rf {tag}"));
}
