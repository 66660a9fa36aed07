//! The loaders the fuzzer drives, one [`Target`] per entry in [`TARGETS`]:
//! how to pick its seeds, the tokens its format is made of, and how to run
//! one input through the same path `herd` takes for a user's file.
//!
//! Adding a loader (ansible.cfg, vault files) is one entry in the table.
//! Each `run` goes through the public entry point the program uses
//! (`Inventory::load`, `load_playbook` + `validate`, `render_file`, ...),
//! writing the input to a scratch file when that entry point reads files.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::json;

use super::mutate::Grammar;
use crate::diagnostic::Diagnostic;
use crate::inventory::Inventory;
use crate::template::{Context, Templar};

/// A file the seeds are taken from.
pub struct SeedFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// What became of one input.
pub enum Outcome {
    Accepted,
    /// Refused with an error. `unpositioned` holds the rendered error when
    /// the target promises `path:line:col` and this one has none.
    Rejected {
        unpositioned: Option<String>,
    },
}

pub struct Target {
    pub name: &'static str,
    /// The seeds, from the repository's and the corpus' files.
    pub seeds: fn(&[SeedFile]) -> Vec<Vec<u8>>,
    /// Seeds written here, for formats the repository has no files of.
    pub builtin: &'static [&'static str],
    pub grammar: Grammar,
    pub run: fn(&Scratch, &[u8]) -> Outcome,
}

/// Every loader that reads user input. Order is part of the seed: adding a
/// target at the end keeps the inputs of the ones before it.
pub const TARGETS: &[Target] = &[
    Target {
        name: "ini_inventory",
        seeds: ini_seeds,
        builtin: &["[web]\nweb[01:03] ansible_port=2222\n[web:vars]\nx='a b'\n[all:children]\nweb\n"],
        grammar: INI,
        run: run_ini_inventory,
    },
    Target {
        name: "yaml_inventory",
        seeds: yaml_inventory_seeds,
        builtin: &["all:\n  hosts:\n    web1:\n      ansible_host: 10.0.0.1\n  children:\n    db:\n      hosts:\n        db[1:3]:\n      vars:\n        x: 1\n"],
        grammar: YAML,
        run: run_yaml_inventory,
    },
    Target {
        name: "inventory_vars_dir",
        seeds: vars_seeds,
        builtin: &["x: 1\nlist: [a, b]\nmap: {k: v}\n"],
        grammar: YAML,
        run: run_vars_dir,
    },
    Target {
        name: "playbook",
        seeds: playbook_seeds,
        builtin: &["- hosts: all\n  tasks:\n    - name: t\n      debug: msg={{ x }}\n      when: x is defined\n"],
        grammar: YAML,
        run: run_playbook,
    },
    Target {
        name: "template",
        seeds: template_seeds,
        builtin: &["{% for h in groups['all'] %}{{ h }}:{{ port }}\n{% endfor %}"],
        grammar: JINJA,
        run: run_template,
    },
    Target {
        name: "expression",
        seeds: expression_seeds,
        builtin: &["x is defined and items | length > 2", "port | int > 1024", "'a' in s"],
        grammar: JINJA,
        run: run_expression,
    },
    Target {
        name: "yaml",
        seeds: yaml_seeds,
        builtin: &["a: &x [1, 2]\nb: *x\nc: !!str 3\n"],
        grammar: YAML,
        run: run_yaml,
    },
    Target {
        name: "known_hosts",
        seeds: known_hosts_seeds,
        builtin: KNOWN_HOSTS_SEEDS,
        grammar: KNOWN_HOSTS,
        run: run_known_hosts,
    },
    Target {
        name: "ssh_config",
        seeds: ssh_config_seeds,
        builtin: SSH_CONFIG_SEEDS,
        grammar: SSH_CONFIG,
        run: run_ssh_config,
    },
    Target {
        name: "kv_args",
        seeds: kv_seeds,
        builtin: &["a=1 b=\"two words\" c='x y' d=\\\"q", "src=a.j2 dest=/etc/a mode=0644"],
        grammar: KV,
        run: run_kv,
    },
    Target {
        name: "extra_vars",
        seeds: kv_seeds,
        builtin: &["{\"a\": 1, \"b\": [true, null]}", "{a: 1, b: yes}", "a=1 b=2"],
        grammar: YAML,
        run: run_extra_vars,
    },
    Target {
        name: "ini_literal",
        seeds: literal_seeds,
        builtin: &["[1, 'a', {'k': (1, 2)}]", "True", "0x1f", "-1.5e3", "'it''s'", "\"a\\tb\"", "a 'b c' \"d\\\"e\""],
        grammar: LITERAL,
        run: run_literal,
    },
    Target {
        name: "host_pattern",
        seeds: pattern_seeds,
        builtin: &["web:&db:!web1", "~web[0-9]+", "web[0:1]", "all", "*", "web*,db1", "!db", "web[-1]"],
        grammar: PATTERN,
        run: run_pattern,
    },
    Target {
        name: "proxy_jump",
        seeds: no_seeds,
        builtin: &["user@bastion:2222", "ssh://u@[::1]:22", "none", "a,b", "bastion"],
        grammar: SSH_CONFIG,
        run: run_proxy_jump,
    },
    Target {
        name: "ansible_cfg",
        seeds: ansible_cfg_seeds,
        builtin: &["[defaults]\ninventory = ./hosts ; inline\nforks: 7\nhost_key_checking = False\n  continued\n[privilege_escalation]\nbecome = yes\n[ssh_connection]\nssh_args = -o ServerAliveInterval=5\n"],
        grammar: ANSIBLE_CFG,
        run: run_ansible_cfg,
    },
    Target {
        name: "vault",
        seeds: vault_seeds,
        builtin: &[],
        grammar: VAULT,
        run: run_vault,
    },
];

const ANSIBLE_CFG: Grammar = Grammar {
    dict: &[
        "[defaults]\n",
        "[privilege_escalation]\n",
        "[ssh_connection]\n",
        "[DEFAULT]\n",
        "[",
        "]",
        " = ",
        ": ",
        " ; ",
        "# ",
        "\n    ",
        "%(x)s",
        "~/",
        "inventory",
        "forks",
        "timeout",
        "gathering",
        "become_method",
        "host_key_checking",
        "roles_path",
        "ssh_args",
        "yes",
        "False",
        "-1",
        "99999999999999999999",
        "\r\n",
    ],
    nest: &["[", "\n    ", "%("],
};

const VAULT: Grammar = Grammar {
    dict: &[
        "$ANSIBLE_VAULT;1.1;AES256\n",
        "$ANSIBLE_VAULT;1.2;AES256;dev\n",
        "$ANSIBLE_VAULT;9.9;AES256\n",
        ";",
        "\n",
        "0a",
        "00",
        "ff",
        "6162",
        "!vault |\n  ",
        "secret: !vault |\n          ",
    ],
    nest: &["$ANSIBLE_VAULT;1.1;AES256\n", "0a0a"],
};

fn ansible_cfg_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    texts(files, |f| ext_of(&f.path) == "cfg")
}

fn vault_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    texts(files, |f| {
        std::str::from_utf8(&f.bytes).is_ok_and(|t| t.contains("$ANSIBLE_VAULT"))
    })
}

/// `ansible.cfg`: parsed, then read into settings with no environment.
/// Syntax errors carry `path:line:col`; a bad value names its line.
fn run_ansible_cfg(_: &Scratch, data: &[u8]) -> Outcome {
    use crate::config::{AnsibleConfig, ConfigError, Ini};
    let path = Path::new("ansible.cfg");
    let text = String::from_utf8_lossy(data);
    let env: IndexMap<String, String> = IndexMap::new();
    let result = Ini::parse(path, &text)
        .and_then(|ini| AnsibleConfig::from_ini(Some(path), &ini, &env, Path::new("/"), None));
    match result {
        Ok(_) => Outcome::Accepted,
        Err(ConfigError::Syntax { line, col, .. }) if line > 0 && col > 0 => {
            Outcome::Rejected { unpositioned: None }
        }
        Err(e @ ConfigError::Syntax { .. }) => Outcome::Rejected {
            unpositioned: Some(e.to_string()),
        },
        Err(_) => Outcome::Rejected { unpositioned: None },
    }
}

/// A vault text, whole or inside YAML as `!vault`, decrypted with the
/// fixtures' test password and a wrong one.
fn run_vault(_: &Scratch, data: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(data);
    let secrets = [
        crate::vault::VaultSecret::new("default", "herd-test-password"),
        crate::vault::VaultSecret::new("dev", "wrong"),
    ];
    let whole = crate::vault::decrypt("fuzz.yml", text.trim(), &secrets);
    // Inline values go through the YAML front end, which finds the tags.
    let inline = crate::yaml::parse(Path::new("fuzz.yml"), &text);
    match (whole, inline) {
        (Ok(_), _) | (_, Ok(_)) => Outcome::Accepted,
        _ => Outcome::Rejected { unpositioned: None },
    }
}

// ---------------------------------------------------------------- grammars

const YAML: Grammar = Grammar {
    dict: &[
        "- ",
        ": ",
        "? ",
        "&a ",
        "*a",
        "<<: *a\n",
        "!!str ",
        "!!binary ",
        "!!python/object:os.system ",
        "!!map ",
        "!!seq ",
        "!!int ",
        "!!float ",
        "!!bool ",
        "!!null ",
        "!!set ",
        "!!omap ",
        "!local ",
        "%YAML 1.2\n",
        "%TAG ! tag:x,2000:\n",
        "---\n",
        "...\n",
        "|\n",
        ">-\n",
        "|+2\n",
        "{",
        "}",
        "[",
        "]",
        ", ",
        "\"",
        "'",
        "#",
        "\\u0000",
        "\\x",
        "~",
        "null",
        "yes",
        "no",
        "on",
        "off",
        "0755",
        "0o17",
        "0x1F",
        "1e999",
        ".nan",
        "-.inf",
        "2001-12-14t21:59:43.10-05:00",
        "{{ x }}",
        "\"{{ x }}\"",
        "{% if x %}",
        "hosts: all\n",
        "tasks:\n",
        "handlers:\n",
        "- name: t\n",
        "  debug: msg=hi\n",
        "when: x",
        "loop: \"{{ range(10) }}\"",
        "block:\n",
        "rescue:\n",
        "always:\n",
        "import_tasks: a.yml\n",
        "include_tasks: a.yml\n",
        "import_playbook: playbook.yml\n",
        "vars:\n",
        "vars_files:\n",
        "children:\n",
        "hosts:\n",
        "notify: h\n",
        "template: src=app.conf.j2 dest=/tmp/x\n",
        "copy: src=a dest=b\n",
        "serial: 0\n",
        "serial: \"150%\"\n",
        "serial: [1, 50%]\n",
        "register: r\n",
        "loop_control:\n",
        "become: yes\n",
        "tags: [a]\n",
        "web[0:999999999]:",
        "db[a:z]:",
        "$ANSIBLE_VAULT;1.1;AES256\n",
        "  ",
        "\t",
        "\n",
        "key",
        "é",
        "\u{feff}",
    ],
    nest: &[
        "[",
        "{",
        "{a: ",
        "- ",
        "? ",
        "&a [",
        "- hosts: all\n  tasks:\n  - block:\n",
    ],
};

const INI: Grammar = Grammar {
    dict: &[
        "[",
        "]",
        "[web]\n",
        "[web:children]\n",
        "[web:vars]\n",
        "[all:vars]\n",
        "[ungrouped]\n",
        "[db:x]\n",
        "web[0:999999999]",
        "web[0:99999999999]",
        "[0:9999999999999999999]",
        "web[01:10]",
        "web[a:z]",
        "web[1:2:0]",
        "[1:3][1:3]",
        "[::1]:22",
        "[::1]",
        ":2222",
        ":99999999999999999999",
        "ansible_host=",
        "ansible_port=",
        "ansible_group_priority=",
        "=",
        " = ",
        "\"",
        "'",
        "\\",
        "#",
        ";",
        "\n",
        " ",
        "=[1, 2",
        "={'a': 1}",
        "=True",
        "=0x10",
        "=1e400",
        "=(1,)",
        "={{ x }}",
        "web1",
        "db1",
        "all",
        "children",
        "vars",
        "#!/bin/sh\n",
        "all:\n  hosts:\n",
    ],
    nest: &["[", "[a:children]\n", "=[", "={'a': ", "(", "web[1:2]"],
};

const JINJA: Grammar = Grammar {
    dict: &[
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        "{{-",
        "-}}",
        "{%-",
        "-%}",
        "{%+",
        "{{ x }}",
        "{% for x in range(999999999) %}",
        "{% for x in range(10) %}",
        "{% endfor %}",
        "{% if x %}",
        "{% elif y %}",
        "{% else %}",
        "{% endif %}",
        "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}",
        "{% set x = 1 %}",
        "{% set y %}",
        "{% endset %}",
        "{% raw %}",
        "{% endraw %}",
        "{% filter upper %}",
        "{% endfilter %}",
        "{% with a = 1 %}",
        "{% endwith %}",
        "{% break %}",
        "{% continue %}",
        "{% include 'app.conf.j2' %}",
        "{% include 'missing' %}",
        "{% import 'app.conf.j2' as m %}",
        "{% extends 'app.conf.j2' %}",
        "{% block b %}",
        "{% endblock %}",
        "{% call m(1) %}",
        "{% endcall %}",
        "{% do x %}",
        "| default('x')",
        "| int",
        "| float",
        "| bool",
        "| string",
        "| to_json",
        "| to_nice_json",
        "| to_yaml",
        "| to_nice_yaml(indent=999)",
        "| from_json",
        "| from_yaml",
        "| b64decode",
        "| b64encode",
        "| regex_replace('(a*)*$', 'b')",
        "| regex_search('(x+x+)+y')",
        "| regex_findall('.')",
        "| join(',')",
        "| length",
        "| list",
        "| unique",
        "| sort",
        "| map('upper')",
        "| select('defined')",
        "| selectattr('a')",
        "| dict2items",
        "| items2dict",
        "| combine({'a': 1}, recursive=true)",
        "| ipaddr",
        "| ipaddr('network')",
        "| hash('sha1')",
        "| password_hash('sha512')",
        "| center(999999999)",
        "| indent(999999999)",
        "| wordwrap(1)",
        "| batch(999999999)",
        "| slice(999999)",
        "| product([1, 2])",
        "| permutations",
        "| combinations(99)",
        "| flatten(999)",
        "| random",
        "| shuffle(seed=1)",
        "| strftime('%Y')",
        "| to_datetime",
        "| quote",
        "| splitext",
        "| basename",
        "| expanduser",
        "| human_to_bytes",
        "| mandatory",
        "| ternary(1, 2)",
        "| zip(x)",
        "| format(1)",
        "| replace('a', 'b')",
        "| truncate(5)",
        "| urlencode",
        "range(10**12)",
        "range(999999999)",
        "'a' * 10**12",
        "'ab' * 999999999",
        "[1] * 999999999",
        "10**10**10",
        "2**64",
        "9223372036854775807 + 1",
        "-9223372036854775808 // -1",
        "1 / 0",
        "1 % 0",
        "lookup('sequence', 'start=0 end=999999999')",
        "lookup('items', [1, 2])",
        "lookup('env', 'HOME')",
        "query('list', 1, 2)",
        "lookup('vars', 'port')",
        "lookup('dict', d)",
        "lookup('nested', [1, 2], [3])",
        "lookup('subelements', [], 'x')",
        "'{:>99999999}'.format(1)",
        "'%999999999d' % 1",
        "'%s' % x",
        ".split()",
        ".items()",
        ".keys()",
        ".startswith('a')",
        ".replace('a', 'b')",
        ".format(x)",
        "x is defined",
        "x is undefined",
        "is number",
        "is match('.*')",
        "is search('a')",
        "is version('1.0', '<')",
        " not ",
        " and ",
        " or ",
        " ~ ",
        " in ",
        " if x else ",
        "[0:999999999]",
        "[::-1]",
        "[999999999]",
        "loop.index",
        "loop.cycle(1, 2)",
        "hostvars[inventory_hostname]",
        "groups['all']",
        "items",
        "port",
        "d.a",
        "s",
        "n",
        "big",
        "omit",
        "none",
        "true",
        "false",
        "True",
        "None",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "'",
        "\"",
        "|",
        ".",
        "=",
        "==",
        "!=",
        "**",
        "//",
        "#jinja2: trim_blocks: False\n",
        "#jinja2:variable_start_string:'[%'\n",
        "#jinja2: block_start_string: \"{{\"\n",
        "\n",
        " ",
        "é",
    ],
    nest: &[
        "{% if x %}",
        "{% for i in items %}",
        "(",
        "[",
        "{'a': ",
        "x | default(",
        "{% block b",
        "-",
    ],
};

const KNOWN_HOSTS: Grammar = Grammar {
    dict: &[
        "@cert-authority ",
        "@revoked ",
        "|1|",
        "|2|",
        "|",
        "*",
        "?",
        "!",
        ",",
        "[",
        "]",
        ":22",
        ":2222",
        "[web1]:2222",
        "web1",
        "10.0.0.1",
        "::1",
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f",
        "AAAA",
        "====",
        "/",
        "+",
        "#",
        " ",
        "\t",
        "\n",
        "web1.example.com",
    ],
    nest: &["[", "|1|", ","],
};

const SSH_CONFIG: Grammar = Grammar {
    dict: &[
        "Host ",
        "Match ",
        "Match all\n",
        "HostName ",
        "User ",
        "Port ",
        "IdentityFile ",
        "IdentitiesOnly ",
        "StrictHostKeyChecking ",
        "UserKnownHostsFile ",
        "ConnectTimeout ",
        "ServerAliveInterval ",
        "ProxyJump ",
        "ProxyCommand ",
        "Include ",
        "=",
        "\"",
        "*",
        "?",
        "!",
        "%h",
        "%p",
        "%r",
        "%u",
        "%d",
        "%%",
        "%",
        "~",
        "~/",
        "yes",
        "no",
        "ask",
        "accept-new",
        "65536",
        "99999999999999999999",
        "-1",
        "none",
        "ssh://",
        "@",
        ":",
        "[::1]",
        ",",
        " ",
        "\t",
        "\n",
        "#",
        "web1",
        "bastion",
    ],
    nest: &["*?", "!", "\"", "%"],
};

const KV: Grammar = Grammar {
    dict: &[
        "=",
        " ",
        "\"",
        "'",
        "\\",
        "\\\\",
        "a=",
        "b=1",
        "x='y z'",
        "{{ x }}",
        "\t",
        "\n",
        "==",
        "chdir=/tmp",
        "creates=x",
        "é",
    ],
    nest: &["'", "\"", "\\", "a="],
};

const LITERAL: Grammar = Grammar {
    dict: &[
        "[", "]", "(", ")", "{", "}", ",", ":", "'", "\"", "\\", "\\x", "\\u12", "\\N{", "True",
        "False", "None", "1", "-", "+", "0x", "0o", "0b", "1e999", "1_0", ".5", "j", "b'", "r'",
        "u'", "'''", "\"\"\"", " ", "\t", "#", "=", "a", "é",
    ],
    nest: &["[", "(", "{'a': ", "{", "-"],
};

const PATTERN: Grammar = Grammar {
    dict: &[
        ":",
        ",",
        "&",
        "!",
        "~",
        "*",
        "?",
        "[",
        "]",
        "[0:999999999]",
        "[-1]",
        "[0]",
        "[1:]",
        "[:-1]",
        "web",
        "db",
        "all",
        "ungrouped",
        "web1",
        "localhost",
        "127.0.0.1",
        "(",
        ")",
        "+",
        "\\",
        "[[",
        "{",
        "^",
        "$",
        ".*",
    ],
    nest: &["~(", "[", "&", "!"],
};

// ------------------------------------------------------------------- seeds

const KNOWN_HOSTS_SEEDS: &[&str] = &[
    "# comment\nweb1.example.com,10.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f\n",
    "[web1]:2222 ssh-rsa AAAAB3NzaC1yc2EAAAAoAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJw== comment\n",
    "|1|AAECAwQFBgcICQoLDA0ODxAREhM=|hrtfZrKxbKOpN4lnqwTFNWZAgaI= ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAABBAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=\n",
    "@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f\n@revoked * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f\n",
];

const SSH_CONFIG_SEEDS: &[&str] = &[
    "Host web*\n  HostName %h.example.com\n  User deploy\n  Port 2222\n  IdentityFile ~/.ssh/id_%r\n\nHost *\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile ~/.ssh/known_hosts /etc/ssh/known\n",
    "Match host web1\n  User x\nHost !db* web?\n  ProxyJump admin@bastion:22\n  ConnectTimeout=5\n  ServerAliveInterval 15\nInclude ~/.ssh/conf.d/*\n",
    "Host=\"web 1\" db\n IdentitiesOnly yes\n ProxyCommand ssh -W %h:%p bastion\n",
];

fn ext_of(p: &Path) -> &str {
    p.extension().and_then(|e| e.to_str()).unwrap_or("")
}

fn is_yaml(p: &Path) -> bool {
    matches!(ext_of(p), "yml" | "yaml" | "json")
        && !p.components().any(|c| c.as_os_str() == "testdata")
}

fn in_dir(p: &Path, names: &[&str]) -> bool {
    p.components()
        .any(|c| names.iter().any(|n| c.as_os_str() == *n))
}

fn is_vars_file(p: &Path) -> bool {
    in_dir(p, &["group_vars", "host_vars", "vars", "defaults"])
}

fn is_inventory_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (in_dir(p, &["inventory", "inventories"])
        || matches!(name, "hosts" | "inventory" | "inventory.ini"))
        && !is_vars_file(p)
}

fn texts(files: &[SeedFile], keep: impl Fn(&SeedFile) -> bool) -> Vec<Vec<u8>> {
    files
        .iter()
        .filter(|f| keep(f))
        .map(|f| f.bytes.clone())
        .collect()
}

fn no_seeds(_: &[SeedFile]) -> Vec<Vec<u8>> {
    Vec::new()
}

fn ini_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    texts(files, |f| {
        ext_of(&f.path) == "ini"
            || (is_inventory_file(&f.path) && !is_yaml(&f.path) && ext_of(&f.path).is_empty())
    })
}

fn yaml_inventory_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    texts(files, |f| is_yaml(&f.path) && is_inventory_file(&f.path))
}

fn vars_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    texts(files, |f| {
        is_vars_file(&f.path) && (is_yaml(&f.path) || ext_of(&f.path).is_empty())
    })
}

fn playbook_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    texts(files, |f| {
        is_yaml(&f.path) && !is_vars_file(&f.path) && !is_inventory_file(&f.path)
    })
}

fn yaml_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    texts(files, |f| is_yaml(&f.path))
}

/// `.j2` files and the `template` strings of the template test tables.
fn template_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    let mut out = texts(files, |f| ext_of(&f.path) == "j2");
    out.extend(table_templates(files).into_iter().map(String::into_bytes));
    out
}

fn table_templates(files: &[SeedFile]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files
        .iter()
        .filter(|f| in_dir(&f.path, &["testdata"]) && ext_of(&f.path) == "json")
    {
        let Ok(serde_json::Value::Array(cases)) = serde_json::from_slice(&f.bytes) else {
            continue;
        };
        out.extend(
            cases
                .iter()
                .filter_map(|c| c.get("template")?.as_str().map(str::to_string)),
        );
    }
    out
}

/// What goes between `{{ }}` in templates, and `when:`-style conditions.
fn expression_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut sources: Vec<String> = table_templates(files);
    sources.extend(
        files
            .iter()
            .filter(|f| is_yaml(&f.path) || ext_of(&f.path) == "j2")
            .map(|f| String::from_utf8_lossy(&f.bytes).into_owned()),
    );
    for text in &sources {
        let mut rest = text.as_str();
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            out.push(rest[start + 2..start + len].trim().as_bytes().to_vec());
            rest = &rest[start + len..];
        }
        for line in text.lines() {
            let line = line.trim_start().trim_start_matches("- ");
            for key in ["when:", "failed_when:", "changed_when:", "until:", "that:"] {
                if let Some(v) = line.strip_prefix(key) {
                    let v = v.trim().trim_matches(['"', '\'']);
                    if !v.is_empty() {
                        out.push(v.as_bytes().to_vec());
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Free-form `k=v` module arguments from playbooks.
fn kv_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in files.iter().filter(|f| is_yaml(&f.path)) {
        for line in String::from_utf8_lossy(&f.bytes).lines() {
            if let Some((_, v)) = line.split_once(": ") {
                if v.contains('=') && !v.trim_start().starts_with(['{', '[']) {
                    out.push(v.trim().as_bytes().to_vec());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The values of INI `k=v` pairs (Python literals when they parse).
fn literal_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in files.iter().filter(|f| ext_of(&f.path) == "ini") {
        for line in String::from_utf8_lossy(&f.bytes).lines() {
            for word in line.split_whitespace() {
                if let Some((_, v)) = word.split_once('=') {
                    out.push(v.as_bytes().to_vec());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Play `hosts:` values.
fn pattern_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in files.iter().filter(|f| is_yaml(&f.path)) {
        for line in String::from_utf8_lossy(&f.bytes).lines() {
            let line = line.trim_start().trim_start_matches("- ");
            if let Some(v) = line.strip_prefix("hosts:") {
                let v = v.trim().trim_matches(['"', '\'']);
                if !v.is_empty() {
                    out.push(v.as_bytes().to_vec());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn known_hosts_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    texts(files, |f| {
        f.path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("known_hosts"))
    })
}

fn ssh_config_seeds(files: &[SeedFile]) -> Vec<Vec<u8>> {
    texts(files, |f| {
        f.path.file_name().and_then(|n| n.to_str()) == Some("config")
            && in_dir(&f.path, &[".ssh", "ssh"])
    })
}

// ----------------------------------------------------------------- scratch

/// Per-worker state: a scratch directory holding the files loaders read,
/// and the template engines, built once.
pub struct Scratch {
    dir: PathBuf,
    ini: PathBuf,
    yaml: PathBuf,
    vars_dir: PathBuf,
    group_vars: PathBuf,
    playbook: PathBuf,
    template: PathBuf,
    /// Playbook validation compiles templates but never renders them.
    validate_templar: Templar,
    /// Renders fuzzed templates: lookups that run commands, write files or
    /// read the disk are taken out.
    render_templar: Templar,
    ctx: Context,
    pattern_inventory: Inventory,
}

/// Lookups a fuzzed template may call: pure functions of their arguments.
const SAFE_LOOKUPS: &[&str] = &[
    "env",
    "vars",
    "list",
    "items",
    "dict",
    "sequence",
    "indexed_items",
    "flattened",
    "together",
    "nested",
    "subelements",
];

/// `lookup`/`query` that refuse every kind not in [`SAFE_LOOKUPS`] and
/// hand the rest to the real function.
#[derive(Debug)]
struct SafeLookup(minijinja::Value);

impl minijinja::value::Object for SafeLookup {
    fn call(
        self: &std::sync::Arc<Self>,
        state: &mut minijinja::State<'_, '_>,
        args: &[minijinja::Value],
    ) -> Result<minijinja::Value, minijinja::Error> {
        let kind = args.first().and_then(|k| k.as_str()).unwrap_or("");
        let kind = kind.strip_prefix("ansible.builtin.").unwrap_or(kind);
        if !SAFE_LOOKUPS.contains(&kind) {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "lookup not run while fuzzing",
            ));
        }
        self.0.call(state, args)
    }
}

impl Scratch {
    pub fn new(dir: &Path) -> std::io::Result<Scratch> {
        let pb_dir = dir.join("play");
        std::fs::create_dir_all(pb_dir.join("templates"))?;
        std::fs::create_dir_all(pb_dir.join("tasks"))?;
        std::fs::write(pb_dir.join("templates/app.conf.j2"), "port={{ port }}\n")?;
        std::fs::write(pb_dir.join("tasks/a.yml"), "- debug: msg=hi\n")?;
        std::fs::write(pb_dir.join("a.yml"), "- debug: msg=hi\n")?;
        let inv_dir = dir.join("inv");
        std::fs::create_dir_all(&inv_dir)?;
        let vars_dir = dir.join("vars_dir");
        std::fs::create_dir_all(vars_dir.join("group_vars"))?;
        std::fs::create_dir_all(vars_dir.join("host_vars"))?;
        std::fs::write(vars_dir.join("hosts"), "[web]\nweb1\n[db]\ndb1\n")?;
        std::fs::write(vars_dir.join("host_vars/web1.yml"), "h: 1\n")?;
        let validate_templar = Templar::new(crate::playbook::template_search_paths(&pb_dir));
        let mut env = validate_templar.env().clone();
        for name in ["lookup", "query", "q"] {
            let Some(original) = env.globals().find(|(n, _)| *n == name).map(|(_, v)| v) else {
                continue;
            };
            env.add_global(name, minijinja::Value::from_object(SafeLookup(original)));
        }
        let render_templar = Templar::from_env(env);
        let ctx = crate::template::from_json(&json!({
            "inventory_hostname": "web1",
            "groups": {"all": ["web1", "db1"], "web": ["web1"], "db": ["db1"]},
            "hostvars": {"web1": {"ansible_host": "10.0.0.1", "port": 80}, "db1": {}},
            "items": [1, 2, 3],
            "port": 8080,
            "x": "x",
            "enabled": true,
            "d": {"a": 1, "b": [1, 2]},
            "s": "hello world",
            "n": null,
            "big": i64::MAX,
        }));
        let mut pattern_inventory = Inventory::default();
        let inv_file = dir.join("pattern.ini");
        std::fs::write(
            &inv_file,
            "localhost\n[web]\nweb[1:20]\n[db]\ndb[1:5]\nweb1\n[prod:children]\nweb\ndb\n",
        )?;
        if let Ok(inv) = Inventory::load(&[inv_file]) {
            pattern_inventory = inv;
        }
        Ok(Scratch {
            dir: dir.to_path_buf(),
            ini: inv_dir.join("hosts.ini"),
            yaml: inv_dir.join("hosts.yml"),
            group_vars: vars_dir.join("group_vars/web.yml"),
            vars_dir,
            playbook: pb_dir.join("playbook.yml"),
            template: pb_dir.join("templates/fuzz.j2"),
            validate_templar,
            render_templar,
            ctx,
            pattern_inventory,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn write(path: &Path, data: &[u8]) {
    // The scratch directory is ours; a failed write is a broken machine.
    if let Err(e) = std::fs::write(path, data) {
        panic!("fuzz scratch file {}: {e}", path.display());
    }
}

/// The rejection when some diagnostic lacks `path:line:col`, checked on
/// the rendered text as a user would see it.
fn check_positions(diags: &[Diagnostic], source: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(source);
    for d in diags {
        let rendered = d.render_with_source(Some(&text));
        let located = d.line > 0
            && d.col > 0
            && rendered.contains(&format!("{}:{}:{}", d.path.display(), d.line, d.col));
        if !located {
            return Outcome::Rejected {
                unpositioned: Some(rendered),
            };
        }
    }
    Outcome::Rejected { unpositioned: None }
}

fn inventory_outcome(inv: Result<Inventory, Vec<Diagnostic>>, source: &[u8]) -> Outcome {
    match inv {
        Ok(inv) => {
            // What `herd inventory --list` and a play's `hosts:` do next.
            let _ = inv.select("all:!web1");
            if inv.hosts.len() <= 2000 {
                let _ = inv.to_list_json();
                let _ = inv.graph();
                for h in inv.hosts.keys().take(5) {
                    let _ = inv.host_vars(h);
                }
            }
            Outcome::Accepted
        }
        Err(diags) => check_positions(&diags, source),
    }
}

// ------------------------------------------------------------------- runs

fn run_ini_inventory(s: &Scratch, data: &[u8]) -> Outcome {
    write(&s.ini, data);
    inventory_outcome(Inventory::load(std::slice::from_ref(&s.ini)), data)
}

fn run_yaml_inventory(s: &Scratch, data: &[u8]) -> Outcome {
    write(&s.yaml, data);
    inventory_outcome(Inventory::load(std::slice::from_ref(&s.yaml)), data)
}

fn run_vars_dir(s: &Scratch, data: &[u8]) -> Outcome {
    write(&s.group_vars, data);
    inventory_outcome(Inventory::load(std::slice::from_ref(&s.vars_dir)), data)
}

fn run_playbook(s: &Scratch, data: &[u8]) -> Outcome {
    write(&s.playbook, data);
    match crate::playbook::load_playbook(&s.playbook) {
        Ok(pb) => {
            let diags = crate::playbook::validate(&pb, &s.validate_templar);
            if diags.is_empty() {
                Outcome::Accepted
            } else {
                check_positions(&diags, data)
            }
        }
        Err(diags) => check_positions(&diags, data),
    }
}

fn run_template(s: &Scratch, data: &[u8]) -> Outcome {
    write(&s.template, data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = s.validate_templar.check_syntax("fuzz.j2", text);
    }
    match s.render_templar.render_file(&s.template, &s.ctx) {
        Ok(_) => Outcome::Accepted,
        Err(_) => Outcome::Rejected { unpositioned: None },
    }
}

fn run_expression(s: &Scratch, data: &[u8]) -> Outcome {
    let Ok(expr) = std::str::from_utf8(data) else {
        return Outcome::Rejected { unpositioned: None };
    };
    if s.validate_templar.check_expression("when", expr).is_err() {
        return Outcome::Rejected { unpositioned: None };
    }
    match s.render_templar.eval_condition("when", expr, &s.ctx) {
        Ok(_) => Outcome::Accepted,
        Err(_) => Outcome::Rejected { unpositioned: None },
    }
}

fn run_yaml(_: &Scratch, data: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(data);
    match crate::yaml::parse(Path::new("fuzz.yml"), &text) {
        Ok(node) => {
            let _ = node.to_json();
            Outcome::Accepted
        }
        Err(d) => check_positions(&[d], data),
    }
}

fn run_known_hosts(_: &Scratch, data: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(data);
    let blob = [
        0, 0, 0, 11, b's', b's', b'h', b'-', b'e', b'd', b'2', b'5', b'5', b'1', b'9', 0, 0, 0, 1,
        7,
    ];
    for (hosts, port) in [
        (&["web1.example.com", "10.0.0.1"][..], 22),
        (&["web1"][..], 2222),
    ] {
        let _ = crate::connection::known_hosts::judge_text(&text, hosts, port, &blob);
    }
    Outcome::Accepted
}

fn run_ssh_config(_: &Scratch, data: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(data);
    let config = crate::connection::ssh_config::SshConfig::parse(&text);
    for alias in ["web1", "db.example.com", "bastion", ""] {
        let host = config.for_host(alias);
        if let Some(jump) = host.proxy_jump {
            let _ = crate::connection::jump::JumpSpec::parse(&jump);
        }
    }
    Outcome::Accepted
}

fn run_kv(_: &Scratch, data: &[u8]) -> Outcome {
    match crate::kv::parse_kv(&String::from_utf8_lossy(data)) {
        Ok(_) => Outcome::Accepted,
        Err(_) => Outcome::Rejected { unpositioned: None },
    }
}

fn run_extra_vars(_: &Scratch, data: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(data);
    // `@file` reads a file named by the input; that is the OS's business.
    let arg = text.trim_start().trim_start_matches('@').to_string();
    match crate::app::parse_extra_vars(&[arg]) {
        Ok(_) => Outcome::Accepted,
        Err(_) => Outcome::Rejected { unpositioned: None },
    }
}

fn run_literal(_: &Scratch, data: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(data);
    let words = crate::inventory::literal::shell_words(&text);
    let value = crate::inventory::literal::python_literal(&text);
    match (words, value) {
        (Ok(_), Some(_)) => Outcome::Accepted,
        _ => Outcome::Rejected { unpositioned: None },
    }
}

fn run_pattern(s: &Scratch, data: &[u8]) -> Outcome {
    match s.pattern_inventory.select(&String::from_utf8_lossy(data)) {
        Ok(_) => Outcome::Accepted,
        Err(_) => Outcome::Rejected { unpositioned: None },
    }
}

fn run_proxy_jump(_: &Scratch, data: &[u8]) -> Outcome {
    match crate::connection::jump::JumpSpec::parse(&String::from_utf8_lossy(data)) {
        Ok(_) => Outcome::Accepted,
        Err(_) => Outcome::Rejected { unpositioned: None },
    }
}
