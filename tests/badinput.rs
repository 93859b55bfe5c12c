//! The hostile and bad input catalogue (issue #8): what an admin can get wrong and what a hostile
//! peer can send, each case with the exact message (or its key part) and the exit code.
//!
//! Every case runs the real binary. The sides are local folders in a temporary directory (a side
//! can be an absolute path: the host is then this machine), so no case needs the lab except the
//! last test, which looks for secrets after a `plan` against the lab. The agent cases start
//! `ocmigrate agent` and write crafted bytes to its stdin, as a compromised operator (or a broken
//! link) would; the operator side's decoder gets crafted answers from a "compromised agent".
//!
//! Exit codes (src/exit.rs): 0 ok, 1 check failed, 2 usage or configuration, 3 unreachable.

mod common;

use ocmigrate::agent::frame::{Frame, FrameReader, Kind};
use ocmigrate::agent::proto::{Entry, ErrorCode, FileType, Hello, RelPath, Target, Time, Welcome};
use ocmigrate::agent::{AgentClient, Request, Response};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_ocmigrate");

fn ocmigrate(args: &[&str], cwd: &Path) -> Output {
    Command::new(EXE)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .env_remove("OCMIGRATE_SSH_CONFIG")
        .output()
        .expect("run ocmigrate")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One case: the exit code and every expected piece of stderr; the failure says which case.
fn expect(case: &str, o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{case}: exit code; stderr:\n{err}\nstdout:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    for n in needles {
        assert!(err.contains(n), "{case}: stderr lacks {n:?}:\n{err}");
    }
    assert!(
        !err.contains("panicked"),
        "{case}: ocmigrate panicked:\n{err}"
    );
}

/// A scratch folder with an instance at `src` (Nextcloud 31, SQLite, installed) and a target
/// release at `tgt`.
struct Scratch {
    dir: tempfile::TempDir,
}

const VERSION_PHP: &str = "<?php\n$OC_Version = array(31,0,0,0);\n$OC_VersionString = '31.0.0';\n$OC_Edition = '';\n$vendor = 'nextcloud';\n";

impl Scratch {
    fn new() -> Scratch {
        let s = Scratch {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(s.path("src/config")).unwrap();
        std::fs::create_dir_all(s.path("src/data")).unwrap();
        std::fs::create_dir_all(s.path("tgt")).unwrap();
        std::fs::write(s.path("src/version.php"), VERSION_PHP).unwrap();
        std::fs::write(s.path("tgt/version.php"), VERSION_PHP).unwrap();
        s.config_php(true);
        s.database();
        s
    }

    /// The source's SQLite database with the tables the inventory reads, empty: a good pair's
    /// database can be read (an unreadable one is a blocker of its own).
    fn database(&self) {
        let schema = "CREATE TABLE oc_storages (numeric_id INTEGER PRIMARY KEY, id TEXT);\n\
             CREATE TABLE oc_appconfig (appid TEXT, configkey TEXT, configvalue TEXT);\n\
             CREATE TABLE oc_mimetypes (id INTEGER PRIMARY KEY, mimetype TEXT);\n\
             CREATE TABLE oc_filecache (fileid INTEGER PRIMARY KEY, mimetype INTEGER, size INTEGER);\n\
             CREATE TABLE oc_file_locks (id INTEGER PRIMARY KEY, lock INTEGER);\n";
        let mut c = Command::new("sqlite3")
            .arg(self.path("src/data/owncloud.db"))
            .stdin(Stdio::piped())
            .spawn()
            .expect("sqlite3 (apt install sqlite3)");
        c.stdin
            .take()
            .unwrap()
            .write_all(schema.as_bytes())
            .unwrap();
        assert!(
            c.wait().unwrap().success(),
            "sqlite3 made the fixture's database"
        );
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn root(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Write the source's config.php, installed or not.
    fn config_php(&self, installed: bool) {
        std::fs::write(
            self.path("src/config/config.php"),
            format!(
                "<?php\n$CONFIG = array (\n  'installed' => {installed},\n  'version' => '31.0.0.0',\n  \
                 'instanceid' => 'ocbadinput1',\n  'datadirectory' => '{}',\n  'dbtype' => 'sqlite3',\n  \
                 'overwrite.cli.url' => 'http://cloud.example.test',\n  'trusted_domains' => array ('cloud.example.test'),\n);\n",
                self.path("src/data").display()
            ),
        )
        .unwrap();
    }

    /// Write `ocmigrate.toml` with the two sides and `extra`; returns its path.
    fn toml(&self, extra: &str) -> PathBuf {
        let p = self.path("ocmigrate.toml");
        std::fs::write(
            &p,
            format!(
                "[source]\nside = \"{}/src\"\n[target]\nside = \"{}/tgt\"\n{extra}",
                self.root(),
                self.root()
            ),
        )
        .unwrap();
        p
    }

    fn run(&self, args: &[&str]) -> Output {
        ocmigrate(args, self.dir.path())
    }
}

// ---------------------------------------------------------------------------------------------
// The migration file: `plan -c FILE` stops at the file, before any host is contacted.

/// (case, file text, the error line, a piece of the hint)
const FILE_CASES: &[(&str, &str, &str, &str)] = &[
    (
        "malformed TOML (an unclosed table header)",
        "[source\nside = \"/a\"\n",
        "c.toml: unclosed table, expected `]`",
        "look at line 1 of the migration file: `[source`",
    ),
    (
        "malformed TOML (an unclosed string)",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\n",
        "c.toml: invalid basic string, expected `\"`",
        "look at line 4 of the migration file",
    ),
    (
        "wrong type: a side as a number",
        "[source]\nside = 5\n[target]\nside = \"/b\"\n",
        "c.toml: invalid type: integer `5`, expected a string",
        "look at line 2 of the migration file: `side = 5`",
    ),
    (
        "wrong type: drain as a number",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[cutover]\ndrain = 7\n",
        "c.toml: invalid type: integer `7`, expected a string",
        "line 6 of the migration file: `drain = 7`",
    ),
    (
        "wrong type: replace_target as a string",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[database]\nreplace_target = \"yes\"\n",
        "c.toml: invalid type: string \"yes\", expected a boolean",
        "line 6 of the migration file",
    ),
    (
        "wrong type: stop as one string instead of a list",
        "[source]\nside = \"/a\"\nstop = \"systemctl stop apache2\"\n[target]\nside = \"/b\"\n",
        "c.toml: invalid type: string \"systemctl stop apache2\", expected a sequence",
        "line 3 of the migration file",
    ),
    (
        "unknown section",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[sourc]\nx = 1\n",
        "c.toml: unknown field `sourc`, expected one of `source`, `target`, `web`, `cutover`, `database`, `dns`",
        "line 5",
    ),
    (
        "unknown key (a typo in a safety setting)",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[cutover]\ndrian = \"1m\"\n",
        "c.toml: unknown field `drian`, expected `drain`",
        "line 6 of the migration file: `drian = \"1m\"`",
    ),
    (
        "a section given twice",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[source]\nstop = []\n",
        "c.toml: duplicate key",
        "line 5 of the migration file: `[source]`",
    ),
    (
        "no [target]",
        "[source]\nside = \"/a\"\n",
        "c.toml: missing field `target`",
        "look at line 1",
    ),
    (
        "an empty file",
        "",
        "c.toml: missing field `source`",
        "look at line 1",
    ),
    (
        "both sides the same",
        "[source]\nside = \"/srv/oc\"\n[target]\nside = \"/srv/oc/\"\n",
        "c.toml: source and target are the same side (/srv/oc)",
        "the target must be another machine (or another path)",
    ),
    (
        "a relative side path",
        "[source]\nside = \"owncloud\"\n[target]\nside = \"/b\"\n",
        "c.toml: \"owncloud\" is neither an ssh:// address nor an absolute path",
        "line 2",
    ),
    (
        "an unknown scheme",
        "[source]\nside = \"sftp://old/var/www\"\n[target]\nside = \"/b\"\n",
        "c.toml: \"sftp://old/var/www\" is neither an ssh:// address nor an absolute path",
        "line 2",
    ),
    (
        "a port out of range",
        "[source]\nside = \"ssh://old:70000/var/www\"\n[target]\nside = \"/b\"\n",
        "c.toml: \"ssh://old:70000/var/www\": the port must be a number from 1 to 65535",
        "line 2",
    ),
    (
        "port 0",
        "[source]\nside = \"ssh://old:0/var/www\"\n[target]\nside = \"/b\"\n",
        "c.toml: \"ssh://old:0/var/www\": the port must be a number from 1 to 65535",
        "line 2",
    ),
    (
        "an ssh side without the instance path",
        "[source]\nside = \"ssh://old\"\n[target]\nside = \"/b\"\n",
        "c.toml: \"ssh://old\" has no instance path after the host",
        "line 2",
    ),
    (
        "a side path with `..`",
        "[source]\nside = \"/var/www/../etc\"\n[target]\nside = \"/b\"\n",
        "c.toml: \"/var/www/../etc\": bad instance path",
        "line 2",
    ),
    (
        "an empty ssh user",
        "[source]\nside = \"ssh://@old/x\"\n[target]\nside = \"/b\"\n",
        "c.toml: \"ssh://@old/x\" has an empty user name",
        "line 2",
    ),
    (
        "drain \"7 minutes\"",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[cutover]\ndrain = \"7 minutes\"\n",
        "c.toml: \"7 minutes\": unknown unit \" minutes\" (use ms, s, m or h)",
        "line 6 of the migration file: `drain = \"7 minutes\"`",
    ),
    (
        "drain in days",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[cutover]\ndrain = \"7d\"\n",
        "c.toml: \"7d\": unknown unit \"d\" (use ms, s, m or h)",
        "line 6",
    ),
    (
        "dns mode rfc2136 without a server",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[dns]\nmode = \"rfc2136\"\nzone = \"example.test.\"\nname = \"cloud.example.test.\"\ntarget = \"new.example.test.\"\ntsig_key_file = \"/k\"\n",
        "c.toml: [dns] server is missing (needed for mode \"rfc2136\")",
        "set it, or use mode = \"manual\"",
    ),
    (
        "dns mode rfc2136 without a key file",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[dns]\nmode = \"rfc2136\"\nserver = \"127.0.0.1:53\"\nzone = \"example.test.\"\nname = \"cloud.example.test.\"\ntarget = \"new.example.test.\"\n",
        "c.toml: [dns] tsig_key_file is missing (updates are signed with TSIG)",
        "keymgr -t NAME hmac-sha256",
    ),
    (
        "an unknown dns mode",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[dns]\nmode = \"nsupdate\"\n",
        "c.toml: unknown variant `nsupdate`, expected one of `none`, `manual`, `rfc2136`",
        "line 6",
    ),
    (
        "dns mode manual without the name",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[dns]\nmode = \"manual\"\n",
        "c.toml: [dns] name is missing (needed when mode is not \"none\")",
        "example [dns] section",
    ),
    (
        "a dns server without a port",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[dns]\nmode = \"manual\"\nname = \"c.example.test.\"\ntarget = \"n.example.test.\"\nserver = \"ns1.example.test\"\n",
        "c.toml: [dns] server \"ns1.example.test\" is not host:port",
        "\"ns1.example.com:53\"",
    ),
    (
        "a poll interval of zero",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[dns]\nmode = \"manual\"\nname = \"c.example.test.\"\ntarget = \"n.example.test.\"\npoll_interval = \"0s\"\n",
        "c.toml: [dns] poll_interval must be more than 0",
        "\"500ms\"",
    ),
    (
        "a propagation timeout that is not a duration",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[dns]\nmode = \"manual\"\nname = \"c.example.test.\"\ntarget = \"n.example.test.\"\npropagation_timeout = \"soon\"\n",
        "c.toml: [dns] propagation_timeout: \"soon\" is not a duration",
        "\"90s\"",
    ),
    (
        "a public URL without a scheme",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[web]\npublic_url = \"cloud.example.com\"\n",
        "c.toml: [web] public_url \"cloud.example.com\" is not an http:// or https:// URL",
        "https://cloud.example.com",
    ),
    (
        "an unsupported way to administer the target database",
        "[source]\nside = \"/a\"\n[target]\nside = \"/b\"\n[database]\ntarget_admin = \"password\"\n",
        "c.toml: [database] target_admin \"password\" is not supported",
        "use \"socket\"",
    ),
];

#[test]
fn migration_file_cases() {
    let dir = tempfile::tempdir().unwrap();
    for (case, text, message, hint) in FILE_CASES {
        std::fs::write(dir.path().join("c.toml"), text).unwrap();
        let o = ocmigrate(&["plan", "-c", "c.toml"], dir.path());
        let error_line = format!("ocmigrate: error: {message}");
        expect(case, &o, 2, &[&error_line, hint]);
        assert!(
            !dir.path().join("c.state").exists(),
            "{case}: a bad file must not create the state folder"
        );
    }
}

#[test]
fn migration_file_missing_unreadable_or_not_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = ocmigrate(&["plan", "-c", "nope.toml"], d);
    expect(
        "missing migration file",
        &o,
        2,
        &[
            "ocmigrate: error: cannot read the migration file nope.toml: No such file or directory",
            "hint: give it with -c FILE, or create one with `ocmigrate init",
        ],
    );
    let o = ocmigrate(&["plan", "-c", "."], d);
    expect(
        "a folder as the migration file",
        &o,
        2,
        &["ocmigrate: error: cannot read the migration file .: Is a directory"],
    );
    std::fs::write(d.join("latin1.toml"), b"[source]\nside = \"/caf\xe9\"\n").unwrap();
    let o = ocmigrate(&["plan", "-c", "latin1.toml"], d);
    expect(
        "a migration file that is not UTF-8",
        &o,
        2,
        &[
            "ocmigrate: error: latin1.toml is not UTF-8 text (line 2)",
            "hint: save it as UTF-8",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// The command line (clap): usage errors are exit 2 with clap's message.

#[test]
fn command_line_cases() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "an unknown flag",
            &["plan", "--frobnicate"],
            &["error: unexpected argument '--frobnicate' found"],
        ),
        (
            "an unknown command",
            &["frobnicate"],
            &["error: unrecognized subcommand 'frobnicate'"],
        ),
        ("no command at all", &[], &["Usage: ocmigrate <COMMAND>"]),
        (
            "a flag given twice",
            &["plan", "--json", "--json"],
            &["error: the argument '--json' cannot be used multiple times"],
        ),
        (
            "a relative side on the command line",
            &["init", "--source", "owncloud", "--target", "/b"],
            &["error: invalid value 'owncloud' for '--source <SIDE>': \"owncloud\" is neither an ssh:// address nor an absolute path"],
        ),
        (
            "a port out of range on the command line",
            &["init", "--source", "ssh://old:99999/x", "--target", "/b"],
            &["\"ssh://old:99999/x\": the port must be a number from 1 to 65535"],
        ),
        (
            "init without --target",
            &["init", "--source", "/a"],
            &["error: the following required arguments were not provided", "--target <SIDE>"],
        ),
        (
            "an unknown step for --stop-after",
            &["migrate", "--stop-after", "bogus"],
            &["error: invalid value 'bogus' for '--stop-after <STEP>': unknown step \"bogus\"; steps: preflight, sync"],
        ),
        (
            "an unknown dns action",
            &["dns", "frob"],
            &["error: unrecognized subcommand 'frob'"],
        ),
        (
            "init with the same side twice",
            &["init", "--source", "/srv/oc", "--target", "/srv/oc"],
            &["ocmigrate: error: the source and the target are the same side"],
        ),
    ];
    for (case, args, needles) in cases {
        let o = ocmigrate(args, d);
        expect(case, &o, 2, needles);
    }
    std::fs::write(d.join("ocmigrate.toml"), "keep me").unwrap();
    let o = ocmigrate(&["init", "--source", "/a", "--target", "/b"], d);
    expect(
        "init over an existing migration file",
        &o,
        2,
        &[
            "ocmigrate: error: ocmigrate.toml exists already",
            "hint: give another name with -o FILE, or --force to replace it",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(d.join("ocmigrate.toml")).unwrap(),
        "keep me"
    );
}

// ---------------------------------------------------------------------------------------------
// The instance folders (local sides: PHP on this machine reads config.php, as on a server).

#[test]
fn instance_folder_cases() {
    let s = Scratch::new();
    let root = s.root();
    s.toml("");

    // A good pair first, so that every case below fails for its own reason only.
    let o = s.run(&["plan"]);
    assert_eq!(o.status.code(), Some(0), "the good pair: {}", stderr(&o));

    // A side that does not exist, a file, a folder without config.php.
    std::fs::write(s.path("afile"), "x").unwrap();
    std::fs::create_dir_all(s.path("empty")).unwrap();
    for (case, side, msg) in [
        (
            "a side that does not exist",
            format!("{root}/nope"),
            format!("ocmigrate: error: source (local): {root}/nope does not exist: this is not an ownCloud instance"),
        ),
        (
            "a side that is a file",
            format!("{root}/afile"),
            format!("{root}/afile has no config/config.php: this is not an ownCloud instance"),
        ),
        (
            "a folder that is not an instance",
            format!("{root}/empty"),
            format!("ocmigrate: error: source (local): {root}/empty has no config/config.php: this is not an ownCloud instance"),
        ),
    ] {
        std::fs::write(
            s.path("x.toml"),
            format!("[source]\nside = \"{side}\"\n[target]\nside = \"{root}/tgt\"\n"),
        )
        .unwrap();
        let o = s.run(&["plan", "-c", "x.toml"]);
        expect(
            case,
            &o,
            2,
            &[&msg, "hint: give the instance root, the folder that holds config/ and occ"],
        );
    }

    // Half-installed: 'installed' => false.
    s.config_php(false);
    let o = s.run(&["plan"]);
    expect(
        "a half-installed instance",
        &o,
        2,
        &[
            &format!("ocmigrate: error: source (local): the instance at {root}/src is not installed ('installed' is not true in config.php)"),
            "hint: finish the installation (or fix config.php) before migrating",
        ],
    );

    // config.php with a syntax error, one that sets no $CONFIG, and an empty one.
    let cfg = s.path("src/config/config.php");
    std::fs::write(&cfg, "<?php\n$CONFIG = array (\n  'x' => ,\n").unwrap();
    let o = s.run(&["plan"]);
    expect(
        "config.php with a syntax error",
        &o,
        2,
        &[
            "ocmigrate: error: source (local): a config file cannot be parsed",
            &format!("{root}/src/config/config.php on line 3"),
            "`php -l FILE`",
        ],
    );
    for (case, text) in [
        ("config.php without $CONFIG", "<?php\n$CONFIG = 'nope';\n"),
        ("an empty config.php", ""),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let o = s.run(&["plan"]);
        expect(
            case,
            &o,
            2,
            &[
                &format!("ocmigrate: error: source (local): {root}/src/config/config.php does not define $CONFIG as an array"),
                "hint: fix config.php: it must read `<?php $CONFIG = array ( ... );`",
            ],
        );
    }

    // The target without a release: a blocker (exit 1), with the fix.
    s.config_php(true);
    std::fs::remove_file(s.path("tgt/version.php")).unwrap();
    let o = s.run(&["plan"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("BLOCKER  target-release-missing")
            && out.contains(&format!(
                "no ownCloud release found at {root}/tgt on the target"
            )),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// Secret files: the admin password file (read by `migrate` before any step) and TSIG key files.

/// A target that is the source's own folder under another name (a symlink to it) would be a
/// copy onto the source: refused by plan, init and sync before anything is read or written.
#[test]
fn target_that_is_the_source_under_another_name() {
    let s = Scratch::new();
    let root = s.root();
    std::os::unix::fs::symlink(s.path("src"), s.path("srclink")).unwrap();
    std::fs::write(
        s.path("x.toml"),
        format!("[source]\nside = \"{root}/src\"\n[target]\nside = \"{root}/srclink\"\n"),
    )
    .unwrap();
    let hint = "not a symlink or another name of the source";
    let o = s.run(&["plan", "-c", "x.toml"]);
    expect(
        "plan, target a symlink to the source",
        &o,
        2,
        &["is the source's own folder", hint],
    );
    let o = s.run(&[
        "init",
        "--source",
        &format!("{root}/src"),
        "--target",
        &format!("{root}/srclink"),
        "-o",
        "y.toml",
    ]);
    expect(
        "init, target a symlink to the source",
        &o,
        2,
        &["is the source's own folder", hint],
    );
    assert!(!s.path("y.toml").exists(), "init wrote a migration file");
    let o = s.run(&[
        "sync",
        "--from",
        &format!("{root}/src"),
        "--to",
        &format!("{root}/srclink"),
    ]);
    expect(
        "sync --from/--to, the same folder",
        &o,
        2,
        &["is the source's own folder", hint],
    );
    // The other folder of the good pair is still accepted by the same check.
    s.toml("");
    let o = s.run(&["plan"]);
    assert_eq!(o.status.code(), Some(0), "the good pair: {}", stderr(&o));
}

#[test]
fn admin_password_file_cases() {
    let s = Scratch::new();
    let root = s.root();
    let cases: [(&str, Option<&[u8]>, &str, &str); 5] = [
        (
            "admin_password_file not set",
            None,
            "ocmigrate: error: [web] admin_password_file is not set: the live check logs in to the target as the admin",
            "hint: write the admin's password (or an app password) into a file only root can read",
        ),
        (
            "admin_password_file missing",
            Some(b"-"),
            "ocmigrate: error: cannot read the admin password file ",
            "No such file or directory",
        ),
        (
            "admin_password_file empty",
            Some(b""),
            "ocmigrate: error: the admin password file ",
            " is empty",
        ),
        (
            "admin_password_file with only a line break",
            Some(b"\n"),
            "ocmigrate: error: the admin password file ",
            "hint: write the admin's password (or an app password) on its first line",
        ),
        (
            "admin_password_file with the password below an empty line",
            Some(b"\nsecret-below\n"),
            "has an empty first line (the password must be on the first line)",
            "hint: write the admin's password (or an app password) on its first line",
        ),
    ];
    for (case, content, message, detail) in cases {
        let pw = s.path("admin-pw");
        let _ = std::fs::remove_file(&pw);
        let extra = match content {
            None => String::new(),
            Some(b"-") => format!("[web]\nadmin_password_file = \"{root}/no-such-file\"\n"),
            Some(bytes) => {
                std::fs::write(&pw, bytes).unwrap();
                format!("[web]\nadmin_password_file = \"{}\"\n", pw.display())
            }
        };
        s.toml(&extra);
        let _ = std::fs::remove_dir_all(s.path("ocmigrate.state"));
        let o = s.run(&["migrate", "--yes"]);
        expect(case, &o, 2, &[message, detail]);
        // Nothing ran: the journal has no step.
        let journal = std::fs::read_to_string(s.path("ocmigrate.state/journal.json")).unwrap();
        assert!(
            !journal.contains("\"started\""),
            "{case}: a step ran: {journal}"
        );
    }
}

/// A host that cannot be reached: exit 3, with the cause and the fix (no lab needed: nothing
/// listens on port 1 of this machine, and `.invalid` never resolves).
#[test]
fn unreachable_host_cases() {
    let dir = tempfile::tempdir().unwrap();
    for (case, side, message, hint) in [
        (
            "nothing listens on the port",
            "ssh://root@127.0.0.1:1/srv/oc",
            "ocmigrate: error: source: the connection was refused (ssh: connect to host 127.0.0.1 port 1: Connection refused)",
            "hint: check the host and port in the side (ssh://user@host:port/path) and that sshd runs",
        ),
        (
            "a host name that does not resolve",
            "ssh://root@no-such-host.invalid/srv/oc",
            "ocmigrate: error: source: the host name cannot be resolved",
            "hint: check the spelling, or use an address or a Host entry in ~/.ssh/config",
        ),
    ] {
        std::fs::write(
            dir.path().join("ocmigrate.toml"),
            format!("[source]\nside = \"{side}\"\n[target]\nside = \"/srv/new\"\n"),
        )
        .unwrap();
        let o = ocmigrate(&["plan"], dir.path());
        expect(case, &o, 3, &[message, hint]);
    }
}

/// Shell metacharacters in a side's path are data, never run: an instance at such a path is read
/// (PHP runs on it) and no marker file appears.
#[test]
fn shell_metacharacters_in_side_paths_are_not_run() {
    let s = Scratch::new();
    let root = s.root();
    let weird = [
        format!("a$(touch {root}/pwned1)"),
        format!("b`touch {root}/pwned2`"),
        format!("c';touch {root}/pwned3;'"),
        format!("d\";touch {root}/pwned4;\""),
        format!("e\ntouch {root}/pwned5"),
    ];
    for w in &weird {
        let inst = s.path("src").parent().unwrap().join(w);
        std::fs::create_dir_all(inst.join("config")).unwrap();
        std::fs::copy(
            s.path("src/config/config.php"),
            inst.join("config/config.php"),
        )
        .unwrap();
        std::fs::copy(s.path("src/version.php"), inst.join("version.php")).unwrap();
        let side = toml::Value::String(inst.display().to_string()).to_string();
        std::fs::write(
            s.path("w.toml"),
            format!("[source]\nside = {side}\n[target]\nside = \"{root}/tgt\"\n"),
        )
        .unwrap();
        let o = s.run(&["plan", "-c", "w.toml"]);
        // The instance is read (its data directory is elsewhere, so plan ends with findings).
        assert!(
            matches!(o.status.code(), Some(0) | Some(1)),
            "{w:?}: {}",
            stderr(&o)
        );
        for n in 1..=5 {
            assert!(
                !s.path(&format!("pwned{n}")).exists(),
                "{w:?}: a shell ran part of the path"
            );
        }
    }
}

/// The state folder: a journal of another migration, a damaged journal, no journal at all.
#[test]
fn state_folder_cases() {
    let s = Scratch::new();
    let root = s.root();
    std::fs::create_dir_all(s.path("other")).unwrap();
    s.toml("");
    let o = s.run(&["rollback", "--yes"]);
    expect(
        "rollback before any migrate",
        &o,
        2,
        &[
            "ocmigrate: error: no migration has started here (no journal in ocmigrate.state)",
            "hint: rollback undoes a `migrate` run of this migration file; the source was not touched",
        ],
    );
    // A first run leaves a journal (it stops at the missing admin password file).
    let o = s.run(&["migrate", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(s.path("ocmigrate.state/journal.json").exists());
    let o = s.run(&["rollback"]);
    expect(
        "rollback without --yes and without a terminal",
        &o,
        2,
        &[
            "refusing to roll back without a confirmation: there is no terminal to ask on",
            "hint: run `ocmigrate rollback --yes`",
        ],
    );
    let o = s.run(&["status", "-c", "nope.toml"]);
    expect(
        "status of a migration file that does not exist",
        &o,
        2,
        &[
            "ocmigrate: error: cannot read the migration file nope.toml: No such file or directory",
            "hint: give it with -c FILE, or create one with `ocmigrate init",
        ],
    );
    std::fs::write(
        s.path("ocmigrate.toml"),
        format!("[source]\nside = \"{root}/src\"\n[target]\nside = \"{root}/other\"\n"),
    )
    .unwrap();
    let o = s.run(&["migrate", "--yes"]);
    expect(
        "a state folder of another migration",
        &o,
        2,
        &[
            &format!("ocmigrate: error: the journal in ocmigrate.state belongs to another migration ({root}/src → {root}/tgt)"),
            "hint: use another migration file (its state folder is beside it), or move that state folder away",
        ],
    );
    std::fs::write(s.path("ocmigrate.state/journal.json"), "{bad").unwrap();
    for (case, args) in [
        ("status with a damaged journal", &["status"][..]),
        ("migrate with a damaged journal", &["migrate", "--yes"][..]),
    ] {
        let o = s.run(args);
        expect(
            case,
            &o,
            2,
            &[
                "ocmigrate: error: the journal ocmigrate.state/journal.json is damaged: key must be a string at line 1 column 2",
                "hint: it is rewritten atomically, so this is not a crash",
            ],
        );
    }
    assert_eq!(
        std::fs::read_to_string(s.path("ocmigrate.state/journal.json")).unwrap(),
        "{bad",
        "a damaged journal is left for the admin, not overwritten"
    );
}

/// A `[dns]` section for `dns switch` against a port nothing listens on: a key file is read (and
/// refused) before any packet is sent.
fn dns_toml(s: &Scratch, key: &Path) -> PathBuf {
    s.toml(&format!(
        "[dns]\nmode = \"rfc2136\"\nserver = \"127.0.0.1:9\"\nzone = \"example.test.\"\nname = \"cloud.example.test.\"\n\
         target = \"new.example.test.\"\nsource = \"old.example.test.\"\ntsig_key_file = \"{}\"\n",
        key.display()
    ))
}

#[test]
fn tsig_key_file_cases() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let key = s.path("tsig.key");
    let secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";
    let cases: &[(&str, String, &str)] = &[
        (
            "a key file in no known format",
            "garbage\n".into(),
            "not a key file in a known format (knot keymgr, BIND tsig-keygen, or ALG:NAME:SECRET)",
        ),
        (
            "an empty key file",
            String::new(),
            "no key found (expected a knot `key:` block or a BIND `key \"NAME\" { ... };` clause)",
        ),
        (
            "a weak algorithm",
            format!("key:\n  - id: k1\n    algorithm: hmac-md5\n    secret: {secret}\n"),
            "key k1: algorithm hmac-md5 is not supported (weak or rare); make a hmac-sha256 or hmac-sha512 key",
        ),
        (
            "a secret that is not base64",
            "key:\n  - id: k1\n    algorithm: hmac-sha256\n    secret: not!base64@@\n".into(),
            "key k1: the secret is not valid base64",
        ),
        (
            "two keys in one file",
            format!("key:\n  - id: k1\n    algorithm: hmac-sha256\n    secret: {secret}\n  - id: k2\n    algorithm: hmac-sha256\n    secret: {secret}\n"),
            "holds 2 keys (k1, k2); keep only the one ocmigrate should use",
        ),
        (
            "a BIND key without a secret",
            "key \"k1\" {\n algorithm hmac-sha256;\n};\n".into(),
            "key k1: no secret",
        ),
    ];
    let cfg = dns_toml(&s, &key);
    for (case, text, message) in cases {
        std::fs::write(&key, text).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let o = s.run(&["dns", "switch", "--yes", "-c", cfg.to_str().unwrap()]);
        let line = format!(
            "ocmigrate: error: TSIG key file {}: {message}",
            key.display()
        );
        expect(
            case,
            &o,
            2,
            &[
                &line,
                "hint: write it with `keymgr -t NAME hmac-sha256` (knot)",
            ],
        );
        assert!(
            !stderr(&o).contains(secret),
            "{case}: the secret was printed"
        );
    }
    std::fs::remove_file(&key).unwrap();
    let o = s.run(&["dns", "switch", "--yes", "-c", cfg.to_str().unwrap()]);
    expect(
        "a missing key file",
        &o,
        2,
        &[&format!(
            "ocmigrate: error: cannot read the TSIG key file {}: No such file or directory",
            key.display()
        )],
    );
    // A good key, no confirmation and no terminal: refused before anything is sent.
    std::fs::write(
        &key,
        format!("key:\n  - id: k1\n    algorithm: hmac-sha256\n    secret: {secret}\n"),
    )
    .unwrap();
    let o = s.run(&["dns", "switch", "-c", cfg.to_str().unwrap()]);
    expect(
        "dns switch without --yes and without a terminal",
        &o,
        2,
        &[
            "ocmigrate: error: refusing to change DNS without a confirmation: there is no terminal to ask on",
            "hint: run `ocmigrate dns switch --yes`",
        ],
    );
    // The good key against a port where nothing listens: unreachable (3), the secret not shown.
    let o = s.run(&["dns", "switch", "--yes", "-c", cfg.to_str().unwrap()]);
    expect(
        "a DNS server that does not answer",
        &o,
        3,
        &["ocmigrate: error: DNS server 127.0.0.1:9 did not answer"],
    );
    assert!(!stderr(&o).contains(secret));
    // `dns check` with no [dns] section.
    s.toml("");
    let o = s.run(&["dns", "check"]);
    expect(
        "dns check without a [dns] section",
        &o,
        2,
        &["ocmigrate: error: ocmigrate.toml: the [dns] section is not set (mode = \"none\")"],
    );
}

// ---------------------------------------------------------------------------------------------
// The agent: crafted bytes on its stdin, as a hostile operator or a broken link would send.

/// Run `ocmigrate agent` (read-only, as the source's spawn) with `input` on stdin.
fn agent(input: &[u8]) -> Output {
    agent_with(&["agent"], input)
}

/// Run the agent with these arguments and `input` on stdin; it must end within 20 s.
fn agent_with(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(EXE)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ocmigrate agent");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the agent did not end within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Every frame the agent wrote.
fn frames(out: &Output) -> Vec<Frame> {
    let mut r = FrameReader::new(&out.stdout[..]);
    let mut v = Vec::new();
    while let Some(f) = r.read_frame().expect("the agent writes whole frames") {
        v.push(f);
    }
    v
}

fn hello(root: &Path) -> Vec<u8> {
    Hello::ours(vec![root.as_os_str().as_encoded_bytes().to_vec()])
        .into_frame()
        .encode()
        .unwrap()
}

fn exit_frame(id: u32) -> Vec<u8> {
    Request::Exit.into_frame(id).encode().unwrap()
}

/// A request whose path is `evil`, bytes no honest client can build: the request is encoded
/// with a harmless placeholder of the same length, which is then replaced in the bytes.
fn with_path(make: impl Fn(Target) -> Request, id: u32, evil: &[u8]) -> Vec<u8> {
    let placeholder = vec![b'q'; evil.len()];
    let t = Target::new(0, RelPath::new(placeholder.clone()).unwrap());
    let mut bytes = make(t).into_frame(id).encode().unwrap();
    let at = bytes
        .windows(placeholder.len())
        .position(|w| w == placeholder.as_slice())
        .unwrap();
    bytes[at..at + evil.len()].copy_from_slice(evil);
    bytes
}

/// The agent's answer to one request: the error code and message of its `Error` frame.
fn error_of(f: &Frame) -> (ErrorCode, String) {
    match Response::from_frame(f).expect("a valid response") {
        Response::Error { code, message, .. } => (code, message),
        r => panic!("expected an Error frame, got {r:?}"),
    }
}

/// A root holding a file, and, outside it, a secret file that symlinks inside point to.
struct AgentTree {
    dir: tempfile::TempDir,
}

const OUTSIDE: &[u8] = b"OUTSIDE-THE-ROOT-d41c";

impl AgentTree {
    fn new() -> AgentTree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::fs::write(root.join("file"), b"inside").unwrap();
        std::fs::write(dir.path().join("outside/secret"), OUTSIDE).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("dirlink")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside/secret"), root.join("filelink"))
            .unwrap();
        std::os::unix::fs::symlink("../outside", root.join("sub/up")).unwrap();
        let fifo =
            std::ffi::CString::new(root.join("fifo").as_os_str().as_encoded_bytes().to_vec())
                .unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        AgentTree { dir }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
}

fn assert_no_outside_bytes(case: &str, out: &Output) {
    assert!(
        !out.stdout.windows(OUTSIDE.len()).any(|w| w == OUTSIDE),
        "{case}: the agent sent bytes of a file outside its root"
    );
}

/// Connection-level garbage: the agent answers with an `Error` frame of id 0, says why on
/// stderr, and exits 2.
#[test]
fn agent_fatal_input_cases() {
    let tree = AgentTree::new();
    let h = hello(&tree.root());
    let mut bad_magic = h.clone();
    bad_magic[12] ^= 0xff;
    let relative_root = Hello::ours(vec![b"var/www".to_vec()])
        .into_frame()
        .encode()
        .unwrap();
    let stat_first = Request::Stat(Target::new(0, RelPath::root()))
        .into_frame(1)
        .encode()
        .unwrap();
    let id0_after_hello = [
        h.clone(),
        Request::Stat(Target::new(0, RelPath::root()))
            .into_frame(0)
            .encode()
            .unwrap(),
    ]
    .concat();
    let mut oversized = h.clone();
    oversized.extend_from_slice(&[
        Kind::Stat as u8,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        0xff,
        0xff,
        0xff,
        0xff,
    ]);
    let mut truncated = h.clone();
    truncated.extend_from_slice(&[Kind::Stat as u8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 1, 2]);
    let mut flags = h.clone();
    flags.extend_from_slice(&[Kind::Stat as u8, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    let mut lying_count = Hello::ours(vec![]).into_frame();
    let n = lying_count.payload.len();
    lying_count.payload[n - 2..].copy_from_slice(&[0xff, 0xff]);
    let lying_count = lying_count.encode().unwrap();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "text instead of frames (a login script)",
            b"Welcome to the server!\n".to_vec(),
            "unknown frame kind 0x57",
        ),
        (
            "a request before the handshake",
            stat_first,
            "the first frame was Stat, not Hello",
        ),
        (
            "a Hello with a bad magic",
            bad_magic,
            "bad magic: this is not an ocmigrate agent speaking",
        ),
        (
            "a Hello with a relative root",
            relative_root,
            "invalid root in a Hello frame: not an absolute path without NUL bytes",
        ),
        (
            "a Hello announcing 65535 roots in a short payload",
            lying_count,
            "invalid root count in a Hello frame: 65535 roots in a short payload",
        ),
        (
            "a request with id 0 after the handshake",
            id0_after_hello,
            "a Stat frame was not expected here",
        ),
        (
            "an oversized frame",
            oversized,
            "frame of 4294967295 bytes is larger than the limit of 16777216 bytes",
        ),
        (
            "a frame cut short",
            truncated,
            "the stream ended inside a frame (14 bytes of it received)",
        ),
        (
            "a frame with flags set",
            flags,
            "frame flags 0x01 / reserved 0x0000 are not zero",
        ),
    ];
    for (case, input, message) in cases {
        let out = agent(&input);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{case}: {err}");
        assert!(
            err.contains(message),
            "{case}: stderr lacks {message:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{case}: {err}");
        let fs = frames(&out);
        let last = fs.last().unwrap_or_else(|| panic!("{case}: no frame"));
        assert_eq!((last.kind, last.id), (Kind::Error, 0), "{case}");
        assert_eq!(error_of(last).0, ErrorCode::BadRequest, "{case}");
    }

    // Another protocol version: the agent says who it is (Welcome), then ends.
    let other = Hello {
        proto: 99,
        ..Hello::ours(vec![])
    }
    .into_frame()
    .encode()
    .unwrap();
    let out = agent(&other);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("protocol version mismatch"));
    let fs = frames(&out);
    assert_eq!(fs[0].kind, Kind::Welcome);
}

/// Request-level hostility after a good handshake: each request gets an `Error` frame with its
/// id and the right code, the connection goes on (the `Exit` at the end gets `Bye`, exit 0), and
/// no byte of a file outside the root is ever sent.
#[test]
fn agent_hostile_request_cases() {
    let tree = AgentTree::new();
    let stat = Request::Stat;
    let hash = Request::Hash;
    let scan = Request::Scan;
    type Make = fn(Target) -> Request;
    let cases: &[(&str, Make, &[u8], ErrorCode, &str)] = &[
        (
            "`..` at the start",
            stat,
            b"../outside/secret",
            ErrorCode::BadRequest,
            "invalid path in a Stat frame: has a `.` or `..` component",
        ),
        (
            "`..` inside",
            hash,
            b"sub/../../outside/secret",
            ErrorCode::BadRequest,
            "invalid path in a Hash frame: has a `.` or `..` component",
        ),
        (
            "an absolute path",
            hash,
            b"/etc/passwd",
            ErrorCode::BadRequest,
            "invalid path in a Hash frame: is absolute",
        ),
        (
            "a NUL byte in the path",
            stat,
            b"file\0x",
            ErrorCode::BadRequest,
            "invalid path in a Stat frame: contains a NUL byte",
        ),
        (
            "an empty component",
            scan,
            b"sub//up",
            ErrorCode::BadRequest,
            "invalid path in a Scan frame: has an empty component",
        ),
        (
            "through a symlinked folder",
            hash,
            b"dirlink/secret",
            ErrorCode::Symlink,
            "a component of the path is a symlink (never followed)",
        ),
        (
            "through a relative symlink to `..`",
            stat,
            b"sub/up/secret",
            ErrorCode::Symlink,
            "a component of the path is a symlink (never followed)",
        ),
        (
            "a symlink to a file outside",
            hash,
            b"filelink",
            ErrorCode::Symlink,
            "is a symlink (never followed)",
        ),
        (
            "scanning through a symlinked folder",
            scan,
            b"dirlink/x",
            ErrorCode::Symlink,
            "a component of the path is a symlink (never followed)",
        ),
        (
            "hashing a fifo (must not block)",
            hash,
            b"fifo",
            ErrorCode::NotAFile,
            "not a regular file",
        ),
    ];
    let mut input = hello(&tree.root());
    for (i, (_, make, path, _, _)) in cases.iter().enumerate() {
        input.extend(with_path(make, i as u32 + 1, path));
    }
    let n = cases.len() as u32;
    // A root index the handshake did not name, and a response kind sent as a request.
    input.extend(
        Request::Stat(Target::new(7, RelPath::root()))
            .into_frame(n + 1)
            .encode()
            .unwrap(),
    );
    input.extend(Frame::new(Kind::Bye, n + 2, Vec::new()).encode().unwrap());
    // A Stat with trailing bytes.
    let mut trailing =
        Request::Stat(Target::new(0, RelPath::new("file").unwrap())).into_frame(n + 3);
    trailing.payload.extend_from_slice(b"xyz");
    input.extend(trailing.encode().unwrap());
    // The symlink itself may be looked at (lstat): its target is reported, not followed.
    input.extend(
        Request::Stat(Target::new(0, RelPath::new("filelink").unwrap()))
            .into_frame(n + 4)
            .encode()
            .unwrap(),
    );
    input.extend(exit_frame(n + 5));

    let out = agent(&input);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_no_outside_bytes("hostile requests", &out);
    let fs = frames(&out);
    assert_eq!(fs[0].kind, Kind::Welcome);
    let by_id = |id: u32| -> &Frame {
        fs.iter()
            .rev()
            .find(|f| f.id == id && f.kind.is_terminal())
            .unwrap_or_else(|| panic!("no answer to request {id}: {fs:?}"))
    };
    for (i, (case, _, _, code, message)) in cases.iter().enumerate() {
        let (c, m) = error_of(by_id(i as u32 + 1));
        assert_eq!(c, *code, "{case}: {m}");
        assert!(m.contains(message), "{case}: {m:?} lacks {message:?}");
    }
    let (c, m) = error_of(by_id(n + 1));
    assert_eq!(c, ErrorCode::NoSuchRoot);
    assert_eq!(m, "no root 7: the handshake named 1");
    let (c, m) = error_of(by_id(n + 2));
    assert_eq!(c, ErrorCode::BadRequest);
    assert_eq!(m, "a Bye frame was not expected here");
    let (c, m) = error_of(by_id(n + 3));
    assert_eq!(c, ErrorCode::BadRequest);
    assert_eq!(m, "payload of a Stat frame has 3 trailing bytes");
    match Response::from_frame(by_id(n + 4)).unwrap() {
        Response::Meta(e) => {
            assert_eq!(e.file_type, FileType::Symlink);
            assert_eq!(e.size as usize, e.target.len());
        }
        r => panic!("Stat of a symlink: {r:?}"),
    }
    assert_eq!(by_id(n + 5).kind, Kind::Bye);
}

/// A root that cannot be opened is reported in the Welcome; requests on it fail, nothing else.
#[test]
fn agent_root_that_is_not_a_folder() {
    let tree = AgentTree::new();
    let mut input = hello(&tree.root().join("file"));
    input.extend(
        Request::Stat(Target::new(0, RelPath::root()))
            .into_frame(1)
            .encode()
            .unwrap(),
    );
    input.extend(exit_frame(2));
    let out = agent(&input);
    assert_eq!(out.status.code(), Some(0));
    let fs = frames(&out);
    let w = Welcome::from_frame(&fs[0]).unwrap();
    assert!(
        matches!(&w.roots[0], Err((ErrorCode::NotADirectory, _))),
        "{w:?}"
    );
    let (c, m) = error_of(&fs[1]);
    assert_eq!(c, ErrorCode::NoSuchRoot);
    assert!(m.starts_with("root 0 could not be opened: "), "{m}");
}

/// The other direction: a compromised agent names paths that leave the root in its answers. The
/// operator's client refuses them; nothing in the answer reaches the caller as a path.
#[test]
fn operator_refuses_hostile_paths_from_an_agent() {
    let entry = |path: &[u8]| Entry {
        path: RelPath::new(path.to_vec()).unwrap(),
        file_type: FileType::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 1,
        mtime: Time { sec: 0, nsec: 0 },
        ctime: Time { sec: 0, nsec: 0 },
        dev: 1,
        ino: 1,
        nlink: 1,
        target: Vec::new(),
    };
    // A real agent's Welcome, so that the handshake itself is valid.
    let hello_out = agent(&hello(Path::new("/")));
    let welcome = frames(&hello_out).remove(0);
    Welcome::from_frame(&welcome).expect("a Welcome");
    for evil in [&b"../../etc/passwd"[..], b"/etc/shadow", b"a/./b", b"x\0y"] {
        let placeholder = vec![b'q'; evil.len()];
        let mut meta = Response::Meta(entry(&placeholder))
            .into_frame(1)
            .encode()
            .unwrap();
        let at = meta
            .windows(placeholder.len())
            .position(|w| w == placeholder.as_slice())
            .unwrap();
        meta[at..at + evil.len()].copy_from_slice(evil);
        let mut from_agent = welcome.encode().unwrap();
        from_agent.extend(meta);
        let mut c = AgentClient::connect(
            "hostile agent",
            Box::new(std::io::Cursor::new(from_agent)),
            Box::new(std::io::sink()),
            vec![b"/".to_vec()],
            false,
        )
        .expect("the handshake is valid");
        let e = c
            .stat(Target::new(0, RelPath::new("x").unwrap()))
            .expect_err("a path leaving the root must be refused");
        let text = e.to_string();
        assert!(e.is_fatal(), "{text}");
        assert!(
            text.contains("invalid entry path in a Meta frame"),
            "{text}"
        );
    }
}

/// Run `ocmigrate agent --writable` (as the target's spawn does) with `input` on stdin.
fn writable_agent(input: &[u8]) -> Output {
    agent_with(&["agent", "--writable"], input)
}

fn put_frames(t: Target, id: u32, data: &[u8], size: u64) -> Vec<u8> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut v = Request::Put {
        target: t,
        size,
        mode: 0o644,
        uid,
        gid,
        mtime: Time {
            sec: 1_700_000_000,
            nsec: 0,
        },
    }
    .into_frame(id)
    .encode()
    .unwrap();
    v.extend(
        Frame::new(Kind::Data, id, [data, &[0]].concat())
            .encode()
            .unwrap(),
    );
    v.extend(Request::PutEnd.into_frame(id).encode().unwrap());
    v
}

/// Writes from a hostile operator to a writable agent: `..`, absolute paths and symlinks along
/// the way are refused with the right code; a symlink as the last component is replaced or
/// removed itself, never followed; nothing outside the root is created, changed or removed.
#[test]
fn agent_hostile_write_cases() {
    use std::os::unix::fs::PermissionsExt;
    let tree = AgentTree::new();
    let root = tree.root();
    let outside = tree.dir.path().join("outside");
    std::os::unix::fs::symlink(outside.join("secret"), root.join("filelink2")).unwrap();
    let secret_mode = || {
        std::fs::metadata(outside.join("secret"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    let mode_before = secret_mode();
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mkdir = move |t: Target| Request::Mkdir {
        target: t,
        mode: 0o755,
        uid,
        gid,
    };
    let symlink = move |t: Target| Request::Symlink {
        target: t,
        link: b"/etc".to_vec(),
        uid,
        gid,
        mtime: Time {
            sec: 1_700_000_000,
            nsec: 0,
        },
    };
    let chmod = |t: Target| Request::SetMeta {
        target: t,
        mode: Some(0o777),
        uid: None,
        gid: None,
        mtime: None,
    };
    let remove = |t: Target| Request::Remove { target: t };
    let cleanup = |t: Target| Request::Cleanup { target: t };
    let link_to_outside = |t: Target| Request::Link {
        target: t,
        existing: RelPath::new("qqqqqqqqqqqqqq").unwrap(),
    };

    let mut input = Hello {
        writable: true,
        ..Hello::ours(vec![root.as_os_str().as_encoded_bytes().to_vec()])
    }
    .into_frame()
    .encode()
    .unwrap();
    // (case, request bytes, expected code (None: Done), message part)
    let mut cases: Vec<(&str, Vec<u8>, Option<ErrorCode>, &str)> = vec![
        (
            "mkdir `..`",
            with_path(mkdir, 1, b"../escape"),
            Some(ErrorCode::BadRequest),
            "invalid path in a Mkdir frame: has a `.` or `..` component",
        ),
        (
            "mkdir at an absolute path",
            with_path(mkdir, 2, b"/tmp/ocm-escape"),
            Some(ErrorCode::BadRequest),
            "invalid path in a Mkdir frame: is absolute",
        ),
        (
            "mkdir through a symlinked folder",
            with_path(mkdir, 3, b"dirlink/new"),
            Some(ErrorCode::Symlink),
            "a component of the path is a symlink (never followed)",
        ),
        (
            "a symlink made through a relative symlink to `..`",
            with_path(symlink, 4, b"sub/up/evil"),
            Some(ErrorCode::Symlink),
            "a component of the path is a symlink (never followed)",
        ),
        (
            "chmod through a symlinked folder",
            with_path(chmod, 5, b"dirlink/secret"),
            Some(ErrorCode::Symlink),
            "a component of the path is a symlink (never followed)",
        ),
        (
            "remove through a symlinked folder",
            with_path(remove, 6, b"sub/up/secret"),
            Some(ErrorCode::Symlink),
            "a component of the path is a symlink (never followed)",
        ),
        (
            "clean-up through a symlinked folder",
            with_path(cleanup, 7, b"dirlink/x"),
            Some(ErrorCode::Symlink),
            "a component of the path is a symlink (never followed)",
        ),
        (
            "the root removed",
            Request::Remove {
                target: Target::new(0, RelPath::root()),
            }
            .into_frame(8)
            .encode()
            .unwrap(),
            Some(ErrorCode::BadRequest),
            "cannot remove the root itself",
        ),
    ];
    // A hard link whose existing entry is reached through a symlink: the placeholder is the
    // `existing` path here.
    let mut link = link_to_outside(Target::new(0, RelPath::new("hl").unwrap()))
        .into_frame(9)
        .encode()
        .unwrap();
    let at = link
        .windows(14)
        .position(|w| w == b"qqqqqqqqqqqqqq")
        .unwrap();
    link[at..at + 14].copy_from_slice(b"dirlink/secret");
    cases.push((
        "a hard link to a file through a symlink",
        link,
        Some(ErrorCode::Symlink),
        "a component of the path is a symlink (never followed)",
    ));
    cases.push((
        "a file put through a symlinked folder",
        put_frames(
            Target::new(0, RelPath::new("qqqqqqqqqqq").unwrap()),
            10,
            b"abc",
            3,
        ),
        Some(ErrorCode::Symlink),
        "a component of the path is a symlink (never followed)",
    ));
    let last = cases.len() - 1;
    let at = cases[last]
        .1
        .windows(11)
        .position(|w| w == b"qqqqqqqqqqq")
        .unwrap();
    cases[last].1[at..at + 11].copy_from_slice(b"dirlink/new");
    cases.push((
        "more bytes than the Put announced",
        put_frames(
            Target::new(0, RelPath::new("short").unwrap()),
            11,
            b"0123456789",
            5,
        ),
        Some(ErrorCode::BadData),
        "more than the announced 5 bytes",
    ));
    cases.push((
        "chmod of a symlink to a file outside (the link's own, never the file's)",
        chmod(Target::new(0, RelPath::new("filelink2").unwrap()))
            .into_frame(12)
            .encode()
            .unwrap(),
        None,
        "",
    ));
    cases.push((
        "a file put over a symlink to a file outside (the link is replaced)",
        put_frames(
            Target::new(0, RelPath::new("filelink").unwrap()),
            13,
            b"abc",
            3,
        ),
        None,
        "",
    ));
    cases.push((
        "a symlinked folder removed (the link, not the folder)",
        remove(Target::new(0, RelPath::new("dirlink").unwrap()))
            .into_frame(14)
            .encode()
            .unwrap(),
        None,
        "",
    ));
    for (_, bytes, _, _) in &cases {
        input.extend_from_slice(bytes);
    }
    input.extend(exit_frame(99));
    let out = writable_agent(&input);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_no_outside_bytes("hostile writes", &out);
    let fs = frames(&out);
    let w = Welcome::from_frame(&fs[0]).unwrap();
    assert!(w.writable, "the writable agent granted writes");
    for (i, (case, _, code, message)) in cases.iter().enumerate() {
        let id = i as u32 + 1;
        let f = fs
            .iter()
            .find(|f| f.id == id && f.kind.is_terminal())
            .unwrap_or_else(|| panic!("{case}: no answer: {fs:?}"));
        match code {
            Some(code) => {
                let (c, m) = error_of(f);
                assert_eq!(c, *code, "{case}: {m}");
                assert!(m.contains(message), "{case}: {m:?} lacks {message:?}");
            }
            None => assert_eq!(f.kind, Kind::Done, "{case}: {:?}", Response::from_frame(f)),
        }
    }
    // Nothing outside the root changed; the symlinks themselves were replaced or removed.
    let mut names: Vec<_> = std::fs::read_dir(tree.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["outside", "root"],
        "something was made beside the root"
    );
    let outside_names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside_names,
        ["secret"],
        "something was made outside the root"
    );
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), OUTSIDE);
    assert_eq!(
        secret_mode(),
        mode_before,
        "the outside file's mode changed"
    );
    assert!(!Path::new("/tmp/ocm-escape").exists());
    assert_eq!(std::fs::read(root.join("filelink")).unwrap(), b"abc");
    assert!(std::fs::symlink_metadata(root.join("filelink"))
        .unwrap()
        .file_type()
        .is_file());
    assert!(
        !root.join("dirlink").exists() && std::fs::symlink_metadata(root.join("dirlink")).is_err()
    );
    assert!(!root.join("short").exists(), "a short Put left its file");
}

/// A read-only agent (the source's: started without `--writable`) refuses every write, even
/// when the Hello asks for them.
#[test]
fn agent_read_only_refuses_writes() {
    let tree = AgentTree::new();
    let root = tree.root();
    let mut input = Hello {
        writable: true,
        ..Hello::ours(vec![root.as_os_str().as_encoded_bytes().to_vec()])
    }
    .into_frame()
    .encode()
    .unwrap();
    input.extend(
        Request::Remove {
            target: Target::new(0, RelPath::new("file").unwrap()),
        }
        .into_frame(1)
        .encode()
        .unwrap(),
    );
    input.extend(put_frames(
        Target::new(0, RelPath::new("new").unwrap()),
        2,
        b"abc",
        3,
    ));
    input.extend(exit_frame(3));
    let out = agent(&input);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fs = frames(&out);
    assert!(!Welcome::from_frame(&fs[0]).unwrap().writable);
    for id in [1, 2] {
        let f = fs
            .iter()
            .find(|f| f.id == id && f.kind.is_terminal())
            .unwrap();
        assert_eq!(error_of(f).0, ErrorCode::ReadOnly, "request {id}");
    }
    assert_eq!(std::fs::read(root.join("file")).unwrap(), b"inside");
    assert!(!root.join("new").exists());
}

// ---------------------------------------------------------------------------------------------
// Secrets (lab): after `init`, `plan`, `plan --json` and the read-only first step of `migrate`,
// no secret is in any output, in the migration file or in the state folder, and no process showed
// one in its argv meanwhile. The state folder is 0700, its files 0600.

/// Samples every process's argv (the lab's hosts share this machine's PID namespace) for any of
/// `needles` until stopped.
struct ArgvWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl ArgvWatch {
    fn start(needles: Vec<Vec<u8>>) -> ArgvWatch {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let me = std::process::id().to_string();
        let handle = std::thread::spawn(move || {
            let (mut samples, mut hits) = (0, Vec::new());
            while !s2.load(Ordering::Relaxed) {
                for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
                        continue;
                    }
                    if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
                        if needles
                            .iter()
                            .any(|n| cmd.windows(n.len()).any(|w| w == n.as_slice()))
                        {
                            hits.push(String::from_utf8_lossy(&cmd).replace('\0', " "));
                        }
                    }
                }
                samples += 1;
            }
            (samples, hits)
        });
        ArgvWatch { stop, handle }
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn no_secret_in_outputs_files_or_argv_after_plan() {
    use std::os::unix::fs::PermissionsExt;
    let lab = common::Lab::get();
    lab.instance("owncloud", "mysql", 1, 10, 21);
    let php = |key: &str| {
        lab.sh(
            "old",
            &format!("php -r 'include \"/var/www/owncloud/config/config.php\"; echo $CONFIG[\"{key}\"];'"),
        )
    };
    let admin_pw_file = lab.var("LAB_ADMIN_PASSWORD_FILE").to_string();
    let tsig_file = lab.var("LAB_TSIG_KEY").to_string();
    let tsig_text = std::fs::read_to_string(&tsig_file).unwrap();
    let secrets: Vec<(&str, String)> = vec![
        ("dbpassword", php("dbpassword")),
        ("secret", php("secret")),
        ("passwordsalt", php("passwordsalt")),
        (
            "admin password",
            std::fs::read_to_string(&admin_pw_file)
                .unwrap()
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        ),
        (
            "TSIG secret",
            tsig_text
                .lines()
                .find_map(|l| l.trim().strip_prefix("secret:"))
                .unwrap_or("")
                .trim()
                .to_string(),
        ),
    ];
    for (what, s) in &secrets {
        assert!(
            s.len() >= 8,
            "the lab's {what} is too short to search for: {s:?}"
        );
    }
    let watch = ArgvWatch::start(secrets.iter().map(|(_, s)| s.as_bytes().to_vec()).collect());

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = "ssh://root@127.0.0.2/var/www/owncloud";
    let tgt = "ssh://root@127.0.0.3/var/www/owncloud";
    let mut outputs = vec![(
        "init",
        ocmigrate(&["init", "--source", src, "--target", tgt], d),
    )];
    assert_eq!(
        outputs[0].1.status.code(),
        Some(0),
        "init: {}",
        stderr(&outputs[0].1)
    );
    // What an admin edits: the admin password file and the lab's DNS server with its key.
    let file = d.join("ocmigrate.toml");
    let toml = std::fs::read_to_string(&file).unwrap();
    let mut toml: String = toml
        .lines()
        .map(|l| {
            if l.starts_with("# admin_password_file") {
                format!("admin_password_file = \"{admin_pw_file}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    toml.truncate(toml.find("[dns]").unwrap());
    toml.push_str(&format!(
        "[dns]\nmode = \"rfc2136\"\nserver = \"{}\"\nzone = \"example.test.\"\nname = \"cloud.example.test.\"\n\
         target = \"new.example.test.\"\ntsig_key_file = \"{tsig_file}\"\n",
        lab.var("LAB_DNS")
    ));
    std::fs::write(&file, toml).unwrap();
    outputs.push(("plan", ocmigrate(&["plan"], d)));
    outputs.push(("plan --json", ocmigrate(&["plan", "--json"], d)));
    outputs.push((
        "migrate --stop-after preflight",
        ocmigrate(&["migrate", "--yes", "--stop-after", "preflight"], d),
    ));
    let (samples, hits) = watch.finish();

    for (cmd, o) in &outputs {
        let all = [&o.stdout[..], &o.stderr[..]].concat();
        for (what, s) in &secrets {
            assert!(
                !all.windows(s.len()).any(|w| w == s.as_bytes()),
                "`ocmigrate {cmd}` printed the {what}:\n{}",
                String::from_utf8_lossy(&all)
            );
        }
    }
    let plan = &outputs[1].1;
    assert!(
        matches!(plan.status.code(), Some(0) | Some(1)),
        "plan: {}",
        stderr(plan)
    );
    let m = &outputs[3].1;
    assert_eq!(
        m.status.code(),
        Some(0),
        "migrate --stop-after preflight: {}",
        stderr(m)
    );

    // The migration file and everything in the state folder.
    let state = d.join("ocmigrate.state");
    let files = files_under(d);
    assert!(
        files.iter().any(|f| f.starts_with(&state)),
        "migrate left no state folder: {files:?}"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for (what, s) in &secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{} holds the {what}",
                f.display()
            );
        }
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is mode {mode:o}, not 0600", f.display());
    }
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the state folder is mode {mode:o}");
    assert!(samples > 10, "argv sampled only {samples} times");
    assert!(
        hits.is_empty(),
        "a secret was in a process's argv: {hits:#?}"
    );
}
