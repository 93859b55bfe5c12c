//! PHP values written exactly as PHP's `var_export($v, true)` writes them, which is how ownCloud
//! and Nextcloud write `config/config.php` (`"<?php\n\$CONFIG = " . var_export($cache, true) . ";\n"`).

#[derive(Clone, Debug, PartialEq)]
pub enum Php {
    Bool(bool),
    Int(i64),
    Str(String),
    /// An ordered array with string keys (an associative array).
    Map(Vec<(String, Php)>),
    /// A list: keys 0, 1, 2, …
    List(Vec<Php>),
}

impl Php {
    pub fn s(v: impl Into<String>) -> Php {
        Php::Str(v.into())
    }
}

/// A PHP single-quoted string literal as var_export writes it: `\` and `'` escaped, NUL bytes
/// spliced in as `' . "\0" . '`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("' . \"\\0\" . '"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `var_export($v, true)`.
pub fn var_export(v: &Php) -> String {
    let mut out = String::new();
    write_value(&mut out, v, 0);
    out
}

fn write_value(out: &mut String, v: &Php, indent: usize) {
    match v {
        Php::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Php::Int(i) => out.push_str(&i.to_string()),
        Php::Str(s) => out.push_str(&quote(s)),
        Php::Map(entries) => {
            let entries: Vec<(String, &Php)> = entries.iter().map(|(k, v)| (quote(k), v)).collect();
            write_array(out, &entries, indent)
        }
        Php::List(items) => {
            let entries: Vec<(String, &Php)> = items
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect();
            write_array(out, &entries, indent)
        }
    }
}

fn write_array(out: &mut String, entries: &[(String, &Php)], indent: usize) {
    let pad = " ".repeat(indent);
    out.push_str("array (\n");
    for (k, v) in entries {
        out.push_str(&pad);
        out.push_str("  ");
        out.push_str(k);
        out.push_str(" => ");
        if matches!(v, Php::Map(_) | Php::List(_)) {
            // var_export puts a nested array on its own line, indented, after "=> ".
            out.push('\n');
            out.push_str(&pad);
            out.push_str("  ");
        }
        write_value(out, v, indent + 2);
        out.push_str(",\n");
    }
    out.push_str(&pad);
    out.push(')');
}

/// A config file as ownCloud writes it.
pub fn config_file(config: &Php) -> String {
    format!("<?php\n$CONFIG = {};\n", var_export(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample() -> Php {
        Php::Map(vec![
            ("instanceid".into(), Php::s("oc1234567890")),
            (
                "quote's \\ back".into(),
                Php::s("it's a \\ and \\\\ and \" and $x and \n newline"),
            ),
            (
                "trusted_domains".into(),
                Php::List(vec![Php::s("localhost"), Php::s("cloud.example.test")]),
            ),
            ("installed".into(), Php::Bool(true)),
            ("maintenance".into(), Php::Bool(false)),
            ("loglevel".into(), Php::Int(2)),
            ("neg".into(), Php::Int(-5)),
            ("empty".into(), Php::List(vec![])),
            ("unicode".into(), Php::s("é e\u{301} 📷")),
            ("nul".into(), Php::s("a\0b")),
            (
                "apps_paths".into(),
                Php::List(vec![
                    Php::Map(vec![
                        ("path".into(), Php::s("/var/www/owncloud/apps")),
                        ("url".into(), Php::s("/apps")),
                        ("writable".into(), Php::Bool(false)),
                    ]),
                    Php::Map(vec![(
                        "nested".into(),
                        Php::Map(vec![("deep".into(), Php::List(vec![Php::Int(1)]))]),
                    )]),
                ]),
            ),
        ])
    }

    #[test]
    fn known_layout() {
        let v = Php::Map(vec![
            ("a".into(), Php::s("x\\y'z")),
            ("t".into(), Php::List(vec![Php::s("localhost")])),
            ("e".into(), Php::List(vec![])),
            ("b".into(), Php::Bool(true)),
        ]);
        assert_eq!(
            var_export(&v),
            "array (\n  'a' => 'x\\\\y\\'z',\n  't' => \n  array (\n    0 => 'localhost',\n  ),\n  'e' => \n  array (\n  ),\n  'b' => true,\n)"
        );
    }

    /// Our output, read back by PHP and written again by its own var_export, is unchanged.
    /// Skipped (with a note) when php is not installed.
    #[test]
    fn php_round_trip_is_identical() {
        let Ok(out) = Command::new("php").arg("-v").output() else {
            eprintln!("php not installed: skipping the round trip through PHP");
            return;
        };
        assert!(out.status.success());
        let dir = std::env::temp_dir().join(format!("labkit-php-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.php");
        let ours = config_file(&sample());
        std::fs::write(&file, &ours).unwrap();
        let out = Command::new("php")
            .arg("-r")
            .arg(r#"include $argv[1]; echo "<?php\n\$CONFIG = " . var_export($CONFIG, true) . ";\n";"#)
            .arg(&file)
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), ours);
    }
}
