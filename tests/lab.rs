//! Tests of the lab itself (lab/lab, see lab/README.md): two hosts with their own files, ssh with
//! strict host keys, their own databases and web servers, and the DNS provider.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-lab cargo test --test lab -- --test-threads=1`
//! (needs root and the apt packages listed in lab/README.md).

mod common;
use common::*;

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Run a program; returns its output whatever the exit status.
fn run(prog: &str, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {prog}: {e}"))
}

/// Run a program with `input` on stdin and extra environment.
fn run_in(prog: &str, args: &[&str], envs: &[(&str, &str)], input: &str) -> Output {
    let mut child = Command::new(prog)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {prog}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

/// Panics with the output unless the command succeeded; returns trimmed stdout.
fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn lab_ssh(lab: &Lab, args: &[&str]) -> Output {
    let mut a = vec!["-F", lab.var("LAB_SSH_CONFIG")];
    a.extend_from_slice(args);
    run("ssh", &a)
}

fn status_ok() -> bool {
    run(lab_script().to_str().unwrap(), &["status"])
        .status
        .success()
}

fn operator_ssh_has_lab_block() -> bool {
    ["/root/.ssh/config", "/root/.ssh/known_hosts"]
        .iter()
        .any(|f| {
            std::fs::read_to_string(f)
                .map(|s| s.contains("# BEGIN ocmigrate-lab"))
                .unwrap_or(false)
        })
}

#[test]
fn up_and_down_twice_then_up_again() {
    let lab = Lab::get();
    assert!(status_ok(), "status must succeed when the lab is up");
    assert!(
        operator_ssh_has_lab_block(),
        "up installs the operator's ssh entries"
    );
    for round in 0..2 {
        let t = std::time::Instant::now();
        lab_cmd(&["down"]);
        eprintln!("down #{round}: {:?}", t.elapsed());
        assert!(!status_ok(), "status must fail after down (round {round})");
        assert!(
            !operator_ssh_has_lab_block(),
            "down removes the operator's ssh entries (round {round})"
        );
        // nothing of the hosts is left: no listener on the hosts' ssh ports, no namespace files mounted
        let ssh = run(
            "ssh",
            &[
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=2",
                "root@127.0.0.2",
                "true",
            ],
        );
        assert!(!ssh.status.success(), "ssh to old must fail after down");
        let mounts = ok("findmnt", run("findmnt", &["-rn", "-o", "TARGET"]));
        let dir = lab_dir();
        assert!(
            !mounts
                .lines()
                .any(|m| m.starts_with(&format!("{}/", dir.display()))),
            "mounts left under the lab dir after down:\n{mounts}"
        );
        // down is idempotent
        lab_cmd(&["down"]);
    }
    for round in 0..2 {
        let t = std::time::Instant::now();
        lab_cmd(&["up"]);
        eprintln!("up #{round}: {:?}", t.elapsed());
        assert!(status_ok(), "status must succeed after up (round {round})");
        // up runs down first: a second up in a row works too
    }
    assert_eq!(ok("hostname old", lab.exec("old", "hostname")), "old");
    assert_eq!(ok("hostname new", lab.exec("new", "hostname")), "new");
}

#[test]
fn the_same_path_differs_between_hosts() {
    let lab = Lab::get();
    let path = "/var/www/owncloud/lab-test-file.txt";
    lab.sh("old", &format!("echo 'written on old' > {path}"));
    lab.sh("new", &format!("echo 'written on new' > {path}"));
    assert_eq!(
        lab.sh("old", &format!("cat {path}")).trim(),
        "written on old"
    );
    assert_eq!(
        lab.sh("new", &format!("cat {path}")).trim(),
        "written on new"
    );
    // the machine's own /var/www/owncloud is a third place
    assert!(
        !std::path::Path::new(path).exists(),
        "{path} must not show up outside the hosts"
    );
    // the host's files are in the lab folder
    let host_file = lab_dir().join("hosts/old/www/lab-test-file.txt");
    assert_eq!(
        std::fs::read_to_string(&host_file).unwrap().trim(),
        "written on old"
    );
    for h in ["old", "new"] {
        lab.sh(h, &format!("rm -f {path}"));
    }
    // each host has its own /root (no pyenv .bashrc), /run, /etc/hosts and process list
    assert!(!lab.sh("old", "cat /root/.bashrc").contains("pyenv"));
    assert_ne!(
        lab.sh("old", "cat /root/.ssh/id_ed25519.pub"),
        lab.sh("new", "cat /root/.ssh/id_ed25519.pub")
    );
    let hosts = lab.sh(
        "new",
        "getent hosts old.example.test cloud.example.test new",
    );
    assert!(
        hosts.contains("127.0.0.2") && hosts.contains("127.0.0.3"),
        "/etc/hosts of new:\n{hosts}"
    );
    assert_eq!(
        lab.sh("new", "getent hosts cloud.example.test | cut -d' ' -f1")
            .trim(),
        "127.0.0.2"
    );
    let ps_old = lab.sh("old", "ps -eo args");
    assert!(
        ps_old.contains("--bind-address=127.0.0.2"),
        "old's mariadbd not in old's ps:\n{ps_old}"
    );
    assert!(
        !ps_old.contains("--bind-address=127.0.0.3"),
        "new's mariadbd visible on old:\n{ps_old}"
    );
    // exec passes stdin and the exit status through
    let out = run_in(
        lab_script().to_str().unwrap(),
        &["exec", "new", "--", "sh", "-c", "cat; hostname; exit 3"],
        &[],
        "from stdin\n",
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "from stdin\nnew");
}

#[test]
fn ssh_with_strict_host_keys() {
    let lab = Lab::get();
    assert_eq!(ok("ssh old", lab_ssh(&lab, &["old", "hostname"])), "old");
    assert_eq!(ok("ssh new", lab_ssh(&lab, &["new", "hostname"])), "new");
    assert_eq!(
        ok("ssh 127.0.0.3", lab_ssh(&lab, &["127.0.0.3", "hostname"])),
        "new"
    );
    // the extra ports on 127.0.0.1
    assert_eq!(
        ok(
            "ssh -p 2201",
            lab_ssh(&lab, &["-p", "2201", "root@127.0.0.1", "hostname"])
        ),
        "old"
    );
    // plain ssh from the operator's account (its ~/.ssh has the lab's key and known hosts)
    for (addr, name) in [("127.0.0.2", "old"), ("127.0.0.3", "new")] {
        let out = run(
            "ssh",
            &[
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                &format!("root@{addr}"),
                "hostname",
            ],
        );
        assert_eq!(ok(&format!("plain ssh root@{addr}"), out), name);
    }
    // host to host (new pulls from old, as a migration does)
    assert_eq!(lab.sh("new", "ssh old hostname").trim(), "old");
    assert_eq!(lab.sh("old", "ssh new.example.test hostname").trim(), "new");
    let rsync = lab.exec(
        "new",
        "ssh old true && command -v rsync >/dev/null && echo ok",
    );
    assert_eq!(ok("ssh/rsync on new", rsync), "ok");
}

#[test]
fn an_unknown_host_key_is_refused() {
    let lab = Lab::get();
    let dir = tempfile::tempdir().unwrap();
    // 1. no known key at all
    let empty = dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let opt = format!("UserKnownHostsFile={}", empty.display());
    let out = lab_ssh(&lab, &["-o", &opt, "old", "true"]);
    assert!(
        !out.status.success(),
        "ssh with an empty known_hosts must fail"
    );
    assert!(
        text(&out.stderr).contains("Host key verification failed"),
        "stderr: {}",
        text(&out.stderr)
    );
    // 2. a different key under old's names (new's key): refused too
    let known = std::fs::read_to_string(lab.var("LAB_KNOWN_HOSTS")).unwrap();
    let new_key = known
        .lines()
        .find(|l| l.starts_with("new.example.test"))
        .expect("new's line")
        .split_once(' ')
        .unwrap()
        .1;
    let wrong = dir.path().join("wrong_known_hosts");
    std::fs::write(
        &wrong,
        format!("old.example.test,old,127.0.0.2 {new_key}\n"),
    )
    .unwrap();
    let opt = format!("UserKnownHostsFile={}", wrong.display());
    let out = lab_ssh(&lab, &["-o", &opt, "old", "true"]);
    assert!(!out.status.success(), "ssh with a wrong host key must fail");
    let err = text(&out.stderr);
    assert!(
        err.contains("Host key verification failed") || err.contains("IDENTIFICATION HAS CHANGED"),
        "stderr: {err}"
    );
    // 3. the lab's own known_hosts works (so the two failures above are about the key)
    assert_eq!(ok("ssh old", lab_ssh(&lab, &["old", "hostname"])), "old");
}

#[test]
fn each_host_has_its_own_mariadb_and_postgresql() {
    let lab = Lab::get();
    let pw = "lab-test-pw-7b1";
    for (host, addr) in [("old", "127.0.0.2"), ("new", "127.0.0.3")] {
        // MariaDB: root through the host's socket; utf8mb4 server charset
        let got = lab.sh(
            host,
            "mariadb -Nse 'select @@hostname, @@character_set_server'",
        );
        assert_eq!(
            got.split_whitespace().collect::<Vec<_>>(),
            [host, "utf8mb4"]
        );
        // a TCP user created on the host answers at the host's address (password via stdin / env)
        let sql = format!(
            "DROP USER IF EXISTS 'labtest'@'%'; CREATE USER 'labtest'@'%' IDENTIFIED BY '{pw}'; GRANT USAGE ON *.* TO 'labtest'@'%';"
        );
        ok(
            "create mariadb user",
            run_in(
                lab_script().to_str().unwrap(),
                &["exec", host, "--", "mariadb"],
                &[],
                &sql,
            ),
        );
        let out = run_in(
            "mariadb",
            &[
                "--no-defaults",
                "-h",
                addr,
                "-P",
                "3306",
                "-u",
                "labtest",
                "-Nse",
                "select @@hostname",
            ],
            &[("MYSQL_PWD", pw)],
            "",
        );
        assert_eq!(ok(&format!("mariadb -h {addr}"), out), host);

        // PostgreSQL: a password role over TCP at the host's address and over the socket
        let sql =
            format!("DROP ROLE IF EXISTS labtest; CREATE ROLE labtest LOGIN PASSWORD '{pw}';");
        ok(
            "create pg role",
            run_in(
                lab_script().to_str().unwrap(),
                &[
                    "exec",
                    host,
                    "--",
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    "psql",
                    "-Xq",
                    "-v",
                    "ON_ERROR_STOP=1",
                ],
                &[],
                &sql,
            ),
        );
        let out = run_in(
            "psql",
            &[
                "-X",
                "-h",
                addr,
                "-p",
                "5432",
                "-U",
                "labtest",
                "-d",
                "postgres",
                "-Atc",
                "select inet_server_addr()",
            ],
            &[("PGPASSWORD", pw)],
            "",
        );
        assert_eq!(ok(&format!("psql -h {addr}"), out), addr);
        // ownCloud's dbhost is /var/run/postgresql: a password user over the host's socket
        let out = run_in(
            lab_script().to_str().unwrap(),
            &[
                "exec",
                host,
                "--",
                "runuser",
                "-u",
                "www-data",
                "--",
                "env",
                &format!("PGPASSWORD={pw}"),
                "psql",
                "-X",
                "-h",
                "/var/run/postgresql",
                "-U",
                "labtest",
                "-d",
                "postgres",
                "-Atc",
                "select inet_server_addr() is null",
            ],
            &[],
            "",
        );
        assert_eq!(ok(&format!("psql over {host}'s socket"), out), "t");
        // a wrong password is refused
        let out = run_in(
            "psql",
            &[
                "-X", "-h", addr, "-U", "labtest", "-d", "postgres", "-Atc", "select 1",
            ],
            &[("PGPASSWORD", "wrong")],
            "",
        );
        assert!(
            !out.status.success(),
            "a wrong PostgreSQL password must be refused"
        );
    }
    // the PHP of the hosts reaches the host's own PostgreSQL through the socket
    let php = lab.sh(
        "old",
        &format!(
            "php -r '$p = new PDO(\"pgsql:host=/var/run/postgresql;dbname=postgres\", \"labtest\", \"{pw}\"); echo $p->query(\"select 42\")->fetchColumn();'"
        ),
    );
    assert_eq!(php.trim(), "42");
}

#[test]
fn apache_serves_each_host_with_php_path_info() {
    let lab = Lab::get();
    for host in ["old", "new"] {
        lab.sh(
            host,
            "service apache2 status >/dev/null || service apache2 start",
        );
        lab.sh(
            host,
            &format!("echo 'static on {host}' > /var/www/owncloud/lab-static.txt"),
        );
        lab.sh(
            host,
            r#"printf '%s\n' '<?php header("Content-Type: text/plain"); echo gethostname(), " ", $_SERVER["SCRIPT_NAME"], " ", $_SERVER["PATH_INFO"] ?? "-", " ", $_SERVER["REQUEST_METHOD"];' > /var/www/owncloud/remote.php; mkdir -p /var/www/owncloud/ocs; cp /var/www/owncloud/remote.php /var/www/owncloud/ocs/v1.php"#,
        );
    }
    for (host, addr) in [("old", "127.0.0.2"), ("new", "127.0.0.3")] {
        let got = ok(
            "curl static",
            run(
                "curl",
                &["-sS", "-f", &format!("http://{addr}/lab-static.txt")],
            ),
        );
        assert_eq!(got, format!("static on {host}"));
        let got = ok(
            "curl remote.php",
            run(
                "curl",
                &[
                    "-sS",
                    "-f",
                    "-X",
                    "PROPFIND",
                    &format!("http://{addr}/remote.php/dav/files/admin/"),
                ],
            ),
        );
        assert_eq!(
            got,
            format!("{host} /remote.php /dav/files/admin/ PROPFIND")
        );
        let got = ok(
            "curl ocs",
            run(
                "curl",
                &["-sS", "-f", &format!("http://{addr}/ocs/v1.php/cloud/user")],
            ),
        );
        assert_eq!(got, format!("{host} /ocs/v1.php /cloud/user GET"));
        // .htaccess is honoured (AllowOverride All)
        lab.sh(host, "mkdir -p /var/www/owncloud/lab-denied && echo 'Require all denied' > /var/www/owncloud/lab-denied/.htaccess && echo secret > /var/www/owncloud/lab-denied/x.txt");
        let code = ok(
            "curl denied",
            run(
                "curl",
                &[
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("http://{addr}/lab-denied/x.txt"),
                ],
            ),
        );
        assert_eq!(code, "403");
        // the access log is the host's own, in combined format
        ok(
            "curl marker",
            run(
                "curl",
                &[
                    "-s",
                    "-o",
                    "/dev/null",
                    &format!("http://{addr}/lab-static.txt?from={host}"),
                ],
            ),
        );
        let log = lab.sh(host, "cat /var/log/apache2/access.log");
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("/ocs/v1.php/cloud/user"))
            .unwrap_or_else(|| panic!("no ocs line in {host}'s access.log:\n{log}"));
        assert!(
            line.contains("\"GET /ocs/v1.php/cloud/user HTTP/1.1\" 200 ")
                && line.contains("\"-\" \"curl/"),
            "not combined format: {line}"
        );
        assert!(
            log.contains(&format!("?from={host}")),
            "{host}'s request not in its log"
        );
        let other = if host == "old" { "new" } else { "old" };
        assert!(
            !log.contains(&format!("?from={other}")),
            "{other}'s request in {host}'s log"
        );
        lab.sh(host, "rm -rf /var/www/owncloud/lab-denied /var/www/owncloud/lab-static.txt /var/www/owncloud/remote.php /var/www/owncloud/ocs");
    }
}

#[test]
fn stopping_apache_on_new_closes_its_port() {
    let lab = Lab::get();
    lab.sh(
        "new",
        "service apache2 status >/dev/null || service apache2 start",
    );
    let code = ok(
        "curl new",
        run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://127.0.0.3/",
            ],
        ),
    );
    assert!(
        code.starts_with('2') || code.starts_with('3') || code.starts_with('4'),
        "new answers HTTP: {code}"
    );
    lab.sh("new", "service apache2 stop");
    let out = run("curl", &["-sS", "-o", "/dev/null", "http://127.0.0.3/"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "curl must fail to connect: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("Couldn't connect") || text(&out.stderr).contains("refused"),
        "{}",
        text(&out.stderr)
    );
    // as on a real host: status says stopped (3), a second stop succeeds
    assert_eq!(
        lab.exec("new", "service apache2 status").status.code(),
        Some(3)
    );
    ok("second stop", lab.exec("new", "service apache2 stop"));
    // old is not affected
    let code = ok(
        "curl old",
        run(
            "curl",
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://127.0.0.2/",
            ],
        ),
    );
    assert!(
        !code.starts_with('5') && code != "000",
        "old still answers: {code}"
    );
    // and back
    lab.sh("new", "service apache2 start");
    let out = run("curl", &["-s", "-o", "/dev/null", "http://127.0.0.3/"]);
    assert!(out.status.success(), "new answers again after start");
}

#[test]
fn dns_serves_the_zone_and_dns_reset_restores_it() {
    let lab = Lab::get();
    let dig = |name: &str, t: &str| {
        ok(
            "dig",
            run("dig", &["+short", "-p", "5353", "@127.0.0.1", name, t]),
        )
    };
    assert_eq!(lab.var("LAB_DNS"), "127.0.0.1:5353");
    assert_eq!(dig("cloud.example.test", "CNAME"), "old.example.test.");
    assert_eq!(dig("old.example.test", "A"), "127.0.0.2");
    assert_eq!(dig("new.example.test", "A"), "127.0.0.3");
    let ttl = ok(
        "dig ttl",
        run(
            "dig",
            &[
                "+noall",
                "+answer",
                "-p",
                "5353",
                "@127.0.0.1",
                "cloud.example.test",
                "CNAME",
            ],
        ),
    );
    assert!(ttl.split_whitespace().nth(1) == Some("60"), "TTL 60: {ttl}");
    // an update signed with the lab's TSIG key swaps the CNAME (the secret goes through stdin)
    let key = std::fs::read_to_string(lab.var("LAB_TSIG_KEY")).unwrap();
    assert!(
        key.contains("oc-migrate.") && key.contains("hmac-sha256"),
        "key file: {key}"
    );
    let secret = key
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret:"))
        .expect("secret")
        .trim()
        .to_string();
    let update = |secret: &str| {
        run_in(
            "nsupdate",
            &[],
            &[],
            &format!(
                "server 127.0.0.1 5353\nkey hmac-sha256:oc-migrate. {secret}\nzone example.test.\nupdate delete cloud.example.test. CNAME\nupdate add cloud.example.test. 60 CNAME new.example.test.\nsend\n"
            ),
        )
    };
    let bad = update("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    assert!(
        !bad.status.success(),
        "an update with a wrong key must be refused"
    );
    assert_eq!(dig("cloud.example.test", "CNAME"), "old.example.test.");
    ok("nsupdate", update(&secret));
    assert_eq!(dig("cloud.example.test", "CNAME"), "new.example.test.");
    lab_cmd(&["dns-reset"]);
    assert_eq!(dig("cloud.example.test", "CNAME"), "old.example.test.");
    assert_eq!(
        dig("example.test", "SOA").split_whitespace().nth(2),
        Some("1"),
        "serial back to 1"
    );
}

#[test]
fn env_names_the_lab() {
    let lab = Lab::get();
    assert_eq!(lab.var("LAB_OLD"), "127.0.0.2");
    assert_eq!(lab.var("LAB_NEW"), "127.0.0.3");
    assert_eq!(lab.var("LAB_DIR"), lab_dir().to_str().unwrap());
    for k in [
        "LAB_TSIG_KEY",
        "LAB_SSH_CONFIG",
        "LAB_KNOWN_HOSTS",
        "LAB_SSH_KEY",
    ] {
        assert!(lab.path(k).is_file(), "{k} = {} is not a file", lab.var(k));
    }
    assert!(lab
        .var("LAB_ADMIN_PASSWORD_FILE")
        .ends_with("/instance/admin-password"));
    // LAB_SSH works as GIT_SSH_COMMAND-style command
    let mut parts: Vec<&str> = lab.var("LAB_SSH").split_whitespace().collect();
    parts.extend(["new", "hostname"]);
    assert_eq!(ok("LAB_SSH new", run(parts[0], &parts[1..])), "new");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(lab_dir()).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o700, "the lab dir is 0700");
}

#[test]
fn shape_adds_latency_to_the_ssh_path() {
    let lab = Lab::get();
    let t = std::time::Instant::now();
    ok("ssh new", lab_ssh(&lab, &["new", "true"]));
    let direct = t.elapsed();
    let out = ok(
        "shape",
        run(
            lab_script().to_str().unwrap(),
            &["shape", "new", "100mbit", "50ms"],
        ),
    );
    assert_eq!(out, "127.0.0.1:2302");
    let t = std::time::Instant::now();
    let got = lab_ssh(&lab, &["new-slow", "hostname"]);
    let shaped = t.elapsed();
    ok(
        "shape off",
        run(lab_script().to_str().unwrap(), &["shape", "new", "off"]),
    );
    assert_eq!(ok("ssh new-slow", got), "new");
    // an ssh connection takes several round trips; each costs 100 ms more
    assert!(
        shaped >= direct + std::time::Duration::from_millis(300),
        "direct {direct:?}, shaped {shaped:?}"
    );
    let after = run(
        "ssh",
        &[
            "-F",
            lab.var("LAB_SSH_CONFIG"),
            "-o",
            "ConnectTimeout=2",
            "new-slow",
            "true",
        ],
    );
    assert!(
        !after.status.success(),
        "the shaped path is gone after shape off"
    );
}
