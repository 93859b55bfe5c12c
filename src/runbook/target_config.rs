//! Runbook step 8's copy (SPEC.md, "target config"): the source's `config/` onto the target
//! verbatim, in one read on the source and one script on the target, checked in that script's
//! answer.
//!
//! The source answers one [`Probe::ReadFiles`] (every plain file of `config/`: mode, mtime, size,
//! name, bytes). The target gets one script, the files' bytes on its stdin (config.php holds
//! secrets: never argv), that removes a killed run's temporary folder, writes each file under a
//! temporary name in a private folder inside `config/` (mode, the web user as owner, mtime) and
//! renames it into place, removes any `*.config.php` the source lacks (ownCloud would merge it),
//! gives `config/` and its entries to the web user, and prints for each file its mode, owner and
//! SHA-256, which must equal the source's. Before, that was a round trip per file on each host
//! plus four more.

use crate::exit::Failure;
use crate::host::{shell_quote, Probe, SourceHost, TargetHost};
use sha2::Digest;
use std::path::Path;

/// A plain file of the source's `config/`, as read. Its `Debug` leaves the bytes out
/// (config.php holds secrets).
#[derive(Clone, PartialEq, Eq)]
pub(super) struct ConfigFile {
    pub mode: u32,
    /// Seconds since the epoch with their fraction, as `find -printf %T@` wrote them.
    pub mtime: String,
    pub name: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("mode", &format_args!("{:o}", self.mode))
            .field("mtime", &self.mtime)
            .field("name", &self.name)
            .field("bytes", &format_args!("{} bytes", self.bytes.len()))
            .finish()
    }
}

/// What the copy did.
#[derive(Debug, Default)]
pub(super) struct Copied {
    pub files: Vec<String>,
    /// `*.config.php` files the target had and the source has not, removed.
    pub removed: Vec<String>,
}

/// The answer of [`Probe::ReadFiles`]: `mode\tmtime\tsize\tname\0` then `size` bytes, per file.
pub(super) fn parse_files(out: &[u8]) -> Result<Vec<ConfigFile>, String> {
    let mut files = Vec::new();
    let mut pos = 0;
    while pos < out.len() {
        let end = out[pos..]
            .iter()
            .position(|&b| b == 0)
            .map(|i| pos + i)
            .ok_or("a file's header is cut short")?;
        let header = std::str::from_utf8(&out[pos..end])
            .map_err(|_| "a file name is not UTF-8".to_string())?;
        let mut parts = header.splitn(4, '\t');
        let (Some(mode), Some(mtime), Some(size), Some(name)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("a file's header is malformed: {header:?}"));
        };
        let mode = u32::from_str_radix(mode, 8).map_err(|_| format!("bad mode {mode:?}"))?;
        if mtime.is_empty() || !mtime.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(format!("bad mtime {mtime:?} of {name:?}"));
        }
        let size: usize = size
            .parse()
            .map_err(|_| format!("bad size {size:?} of {name:?}"))?;
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(format!("bad file name {name:?}"));
        }
        let data = end + 1;
        let Some(bytes) = out.get(data..data + size) else {
            return Err(format!(
                "{name} is shorter than its size said (it changed while read)"
            ));
        };
        files.push(ConfigFile {
            mode: mode & 0o7777,
            mtime: mtime.to_string(),
            name: name.to_string(),
            bytes: bytes.to_vec(),
        });
        pos = data + size;
    }
    Ok(files)
}

/// The target's script and its stdin (the files' bytes, one after the other).
pub(super) fn apply_script(dir: &Path, user: &str, files: &[ConfigFile]) -> (String, Vec<u8>) {
    let mut s = format!(
        "d={}; u={}\n\
         mkdir -p -- \"$d\" || exit 3\n\
         for o in \"$d\"/.ocm-??????; do if [ -d \"$o\" ] && [ ! -L \"$o\" ]; then rm -rf -- \"$o\"; fi; done\n\
         t=$(mktemp -d \"$d/.ocm-XXXXXX\") || exit 3\n\
         trap 'rm -rf -- \"$t\"' EXIT\n\
         cat > \"$t/in\" || exit 3\n\
         put() {{ tail -c +\"$(($1 + 1))\" -- \"$t/in\" | head -c \"$2\" > \"$t/f\" && [ \"$(wc -c < \"$t/f\")\" -eq \"$2\" ] \
         && chmod \"$3\" \"$t/f\" && chown -- \"$u:\" \"$t/f\" && touch -h -d \"@$4\" \"$t/f\" && mv -fT -- \"$t/f\" \"$d/$5\" \
         || {{ printf 'cannot write %s\\n' \"$5\" >&2; exit 4; }}; }}\n",
        shell_quote(&dir.to_string_lossy()),
        shell_quote(user)
    );
    let mut input = Vec::new();
    for f in files {
        s.push_str(&format!(
            "put {} {} {:o} {} {}\n",
            input.len(),
            f.bytes.len(),
            f.mode,
            shell_quote(&f.mtime),
            shell_quote(&f.name)
        ));
        input.extend_from_slice(&f.bytes);
    }
    // A `*.config.php` the source has not would be merged into the config by ownCloud.
    let keep: Vec<String> = files.iter().map(|f| shell_quote(&f.name)).collect();
    s.push_str("for f in \"$d\"/*.config.php \"$d\"/.*.config.php; do\n");
    s.push_str("  [ -f \"$f\" ] || [ -L \"$f\" ] || continue\n");
    if !keep.is_empty() {
        s.push_str(&format!(
            "  case \"${{f##*/}}\" in {}) continue ;; esac\n",
            keep.join("|")
        ));
    }
    s.push_str("  rm -f -- \"$f\" || exit 5\n  printf 'removed\\t%s\\0' \"${f##*/}\"\ndone\n");
    // Files keep the source's modes; owner and group are the web user's.
    s.push_str(
        "rm -rf -- \"$t\" && trap - EXIT\n\
         chown -- \"$u:\" \"$d\"/* \"$d\"/.[!.]* 2>/dev/null\n\
         chown -- \"$u:\" \"$d\" || exit 6\n\
         c() { s=$(stat -c '%a %U' -- \"$d/$2\") && h=$(sha256sum < \"$d/$2\") \
         && printf 'file\\t%s\\t%s\\t%s\\0' \"$1\" \"$s\" \"${h%% *}\" || exit 7; }\n",
    );
    for (i, f) in files.iter().enumerate() {
        s.push_str(&format!("c {i} {}\n", shell_quote(&f.name)));
    }
    s.push_str("printf 'dir\\t%s\\0' \"$(stat -c %U -- \"$d\")\"\n");
    (s, input)
}

/// What the target's script printed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Applied {
    pub removed: Vec<String>,
    /// Per file, by its index in the source's list: mode, owner, SHA-256 (hex).
    pub files: Vec<(usize, u32, String, String)>,
    pub dir_owner: Option<String>,
}

pub(super) fn parse_applied(out: &[u8]) -> Applied {
    let mut a = Applied::default();
    for rec in out.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let rec = String::from_utf8_lossy(rec);
        let mut p = rec.splitn(2, '\t');
        match (p.next(), p.next()) {
            (Some("removed"), Some(name)) => a.removed.push(name.to_string()),
            (Some("dir"), Some(owner)) => a.dir_owner = Some(owner.trim().to_string()),
            (Some("file"), Some(rest)) => {
                let mut q = rest.splitn(3, '\t');
                let (Some(i), Some(stat), Some(sha)) = (q.next(), q.next(), q.next()) else {
                    continue;
                };
                let (mode, owner) = stat.split_once(' ').unwrap_or((stat, ""));
                if let (Ok(i), Ok(mode)) = (i.parse(), u32::from_str_radix(mode, 8)) {
                    a.files
                        .push((i, mode, owner.trim().to_string(), sha.trim().to_string()));
                }
            }
            _ => {}
        }
    }
    a
}

/// What differs between the source's files and what the target's script found after the copy:
/// bytes (by SHA-256), mode, owner (the web user), the folder's owner. Empty when all is right.
pub(super) fn differences(files: &[ConfigFile], a: &Applied, user: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let Some((_, mode, owner, sha)) = a.files.iter().find(|x| x.0 == i) else {
            out.push(format!("{}: not found after the copy", f.name));
            continue;
        };
        let want = crate::agent::client::hex(&sha2::Sha256::digest(&f.bytes));
        if *sha != want {
            out.push(format!("{}: content differs", f.name));
        }
        if *mode != f.mode {
            out.push(format!("{}: mode {mode:o}, not {:o}", f.name, f.mode));
        }
        if owner != user {
            out.push(format!("{}: owner {owner}, not {user}", f.name));
        }
    }
    match a.dir_owner.as_deref() {
        Some(o) if o == user => {}
        o => out.push(format!(
            "config/: owner {}, not {user}",
            o.unwrap_or("unknown")
        )),
    }
    out
}

/// Copy the source's `config/` to the target (above); `laps` gets `read_source` and
/// `write_target`.
pub(super) fn copy(
    src: &SourceHost,
    tgt: &TargetHost,
    user: &str,
    laps: &mut crate::laps::Laps,
) -> Result<Copied, Failure> {
    let src_cfg = src.root().join("config");
    let tgt_cfg = tgt.root().join("config");
    let r = src.probe(&Probe::ReadFiles(src_cfg.clone()))?;
    if !r.ok() {
        return Err(Failure::check(format!(
            "{}: cannot read {}: {}",
            src.label(),
            src_cfg.display(),
            r.stderr_text()
        )));
    }
    let files = parse_files(&r.stdout).map_err(|e| {
        Failure::check(format!(
            "{}: reading {}: {e}",
            src.label(),
            src_cfg.display()
        ))
        .hint("run the same command again")
    })?;
    if !files.iter().any(|f| f.name == "config.php") {
        return Err(Failure::check(format!(
            "{}: {} has no config.php",
            src.label(),
            src_cfg.display()
        )));
    }
    laps.lap("read_source");
    let (script, input) = apply_script(&tgt_cfg, user, &files);
    let r = tgt.run_with_input(&script, &input)?;
    if !r.ok() {
        return Err(Failure::check(format!(
            "{}: cannot write {}: {}",
            tgt.label(),
            tgt_cfg.display(),
            r.stderr_text()
        )));
    }
    let applied = parse_applied(&r.stdout);
    laps.lap("write_target");
    let diffs = differences(&files, &applied, user);
    if !diffs.is_empty() {
        return Err(Failure::check(format!(
            "{}: {} is not the source's after the copy: {}",
            tgt.label(),
            tgt_cfg.display(),
            diffs.join("; ")
        )));
    }
    Ok(Copied {
        files: files.into_iter().map(|f| f.name).collect(),
        removed: applied.removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, mode: u32, bytes: &[u8]) -> ConfigFile {
        ConfigFile {
            mode,
            mtime: "1700000000.123456789".into(),
            name: name.into(),
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn parses_files_and_refuses_a_short_one() {
        let out = b"640\t1700000000.5\t5\tconfig.php\0<?php644\t1.0\t0\t.htaccess\0";
        let f = parse_files(out).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].mode, f[0].name.as_str()), (0o640, "config.php"));
        assert_eq!(f[0].bytes, b"<?php");
        assert_eq!((f[1].name.as_str(), f[1].bytes.len()), (".htaccess", 0));
        assert!(parse_files(b"640\t1.0\t9\tconfig.php\0<?php").is_err());
        assert!(parse_files(b"640\t1.0\t0\tconfig.php").is_err());
        assert!(parse_files(b"640\t1;rm\t0\tx\0").is_err());
        assert!(parse_files(b"640\t1.0\t0\ta/b\0").is_err());
        assert!(parse_files(b"").unwrap().is_empty());
        // The bytes never reach a message.
        let dbg = format!("{:?}", file("config.php", 0o640, b"'secret' => 'hunter2'"));
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    fn whoami() -> String {
        let out = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// The whole copy between two local sides: the source's probe, the parse, the target's
    /// script and its check.
    #[test]
    fn copies_between_two_local_sides() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (sc, tc) = (a.path().join("config"), b.path().join("config"));
        std::fs::create_dir_all(sc.join("sub")).unwrap();
        std::fs::create_dir_all(&tc).unwrap();
        std::fs::write(
            sc.join("config.php"),
            b"<?php $CONFIG = array ('x' => \"\\0\");\n\0tail",
        )
        .unwrap();
        std::fs::write(sc.join(".htaccess"), b"deny\n").unwrap();
        std::fs::write(sc.join("-dash.config.php"), b"<?php\n").unwrap();
        std::fs::set_permissions(
            sc.join("config.php"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::os::unix::fs::symlink("config.php", sc.join("link.config.php")).unwrap();
        std::fs::write(tc.join("old.config.php"), b"<?php\n").unwrap();
        let src = crate::migration::connect_source(&crate::config::Side::Local {
            root: a.path().to_path_buf(),
        })
        .unwrap();
        let tgt = crate::migration::connect_target(&crate::config::Side::Local {
            root: b.path().to_path_buf(),
        })
        .unwrap();
        let mut laps = crate::laps::Laps::start();
        let c = copy(&src, &tgt, &whoami(), &mut laps).unwrap();
        assert_eq!(c.files, vec!["-dash.config.php", "config.php", ".htaccess"]);
        assert_eq!(c.removed, vec!["old.config.php"]);
        for name in &c.files {
            let (s, t) = (sc.join(name), tc.join(name));
            assert_eq!(
                std::fs::read(&s).unwrap(),
                std::fs::read(&t).unwrap(),
                "{name}"
            );
            let (ms, mt) = (
                std::fs::metadata(&s).unwrap(),
                std::fs::metadata(&t).unwrap(),
            );
            assert_eq!(ms.mode(), mt.mode(), "{name}");
            assert_eq!(
                (ms.mtime(), ms.mtime_nsec()),
                (mt.mtime(), mt.mtime_nsec()),
                "{name}"
            );
        }
        assert!(!tc.join("link.config.php").exists() && !tc.join("sub").exists());
        let f = laps.figure();
        assert!(
            f["read_source"].is_number() && f["write_target"].is_number(),
            "{f}"
        );
        // A source without config.php is refused before the target is touched.
        std::fs::remove_file(sc.join("config.php")).unwrap();
        let e = copy(&src, &tgt, &whoami(), &mut laps).unwrap_err();
        assert!(e.message.contains("has no config.php"), "{}", e.message);
    }

    /// The script run on a scratch folder: files written with their mode and mtime, an
    /// extraneous `*.config.php` removed, others kept, the bytes never in the script.
    #[test]
    fn the_script_copies_removes_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("config");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("stale.config.php"), "<?php $CONFIG = [];").unwrap();
        std::fs::write(d.join("config.php"), "old").unwrap();
        std::fs::write(d.join("CAN_INSTALL"), "").unwrap();
        // A killed run's temporary folder (a copy of config.php in it) goes.
        std::fs::create_dir(d.join(".ocm-AbC123")).unwrap();
        std::fs::write(d.join(".ocm-AbC123/f"), "old secret").unwrap();
        let user = whoami();
        let files = vec![
            file(
                "config.php",
                0o640,
                b"<?php $CONFIG = ['secret' => 'hunter2'];\n",
            ),
            file("o'dd name.config.php", 0o600, b"<?php\n"),
            file(".htaccess", 0o644, b""),
        ];
        let (script, input) = apply_script(&d, &user, &files);
        assert!(!script.contains("hunter2"));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(&input)?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let a = parse_applied(&out.stdout);
        assert_eq!(a.removed, vec!["stale.config.php".to_string()]);
        assert!(differences(&files, &a, &user).is_empty(), "{a:?}");
        use std::os::unix::fs::MetadataExt;
        for f in &files {
            let p = d.join(&f.name);
            assert_eq!(std::fs::read(&p).unwrap(), f.bytes);
            let m = std::fs::metadata(&p).unwrap();
            assert_eq!(m.mode() & 0o7777, f.mode, "{}", f.name);
            assert_eq!((m.mtime(), m.mtime_nsec()), (1700000000, 123456789));
        }
        // Not a *.config.php: kept; no temporary folder left.
        let mut left: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                ".htaccess",
                "CAN_INSTALL",
                "config.php",
                "o'dd name.config.php"
            ]
        );
        // A difference is seen: other bytes, mode, owner, or a file missing.
        let mut bad = a;
        bad.files[0].1 = 0o644;
        bad.files[1].2 = "nobody-else".into();
        bad.files[2].3 = "0".repeat(64);
        bad.dir_owner = None;
        let d = differences(&files, &bad, &user);
        assert_eq!(d.len(), 4, "{d:?}");
        bad.files.remove(0);
        assert!(differences(&files, &bad, &user)
            .iter()
            .any(|m| m.contains("config.php: not found")));
    }
}
