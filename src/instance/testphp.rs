//! Test helpers that ask the real PHP: the comparison is mandatory (CI has `php`), so a missing
//! `php` fails the test loudly instead of skipping it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Run `php` with `args`, feeding `stdin`; returns (exit code, stdout, stderr).
pub(crate) fn php(args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = Command::new("php")
        .args(["-d", "display_errors=stderr", "-d", "error_reporting=-1"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "\n\n*** these tests compare ocmigrate's PHP reader with real PHP, and `php` could \
                 not be run ({e}). Install the PHP CLI (apt-get install php-cli). They are not \
                 skipped on purpose. ***\n\n"
            )
        });
    let mut input = child.stdin.take().expect("stdin is piped");
    input.write_all(stdin).expect("write to php");
    drop(input);
    let out = child.wait_with_output().expect("wait for php");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A typed, exact dump of a value: the same text from PHP ([`DUMP_PHP`], `ocm_dump`) and from
/// Rust ([`dump`]).
pub(crate) const DUMP_PHP: &str = include_str!("dump.php");

pub(crate) use super::value::typed_dump as dump;

/// What PHP makes of a file: the dump of every variable it defines (as an array keyed by name)
/// and the hex of what it echoes. `Err(stderr)` if PHP fails on it.
pub(crate) fn php_read_file(path: &Path) -> Result<(String, String), String> {
    let code = format!(
        "{DUMP_PHP}\nob_start();\n$vars = (function ($ocm_f) {{ include $ocm_f; unset($ocm_f); return get_defined_vars(); }})($argv[1]);\n$out = ob_get_clean();\necho ocm_dump($vars), \"\\n\", bin2hex($out);"
    );
    let p = path.to_str().expect("utf-8 path");
    let (rc, out, err) = php(&["-r", &code, "--", p], b"");
    if rc != 0 || err.contains("Fatal") || err.contains("Parse error") {
        return Err(format!("exit {rc}: {err}"));
    }
    let out = String::from_utf8(out).expect("ascii dump");
    let (d, o) = out.split_once('\n').expect("two lines");
    Ok((d.to_string(), o.to_string()))
}

/// `php -l`: does PHP accept the syntax?
pub(crate) fn php_lint(path: &Path) -> bool {
    let p = path.to_str().expect("utf-8 path");
    php(&["-l", p], b"").0 == 0
}
