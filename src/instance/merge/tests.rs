use super::*;
use crate::instance::testphp::{dump, php};
use crate::instance::InstanceFiles;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/phpconfig_fixtures")
}

fn arr(pairs: &[(&str, PhpValue)]) -> PhpValue {
    PhpValue::Array(
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect(),
    )
}

#[test]
fn later_files_win_and_non_arrays_are_skipped() {
    let files = vec![
        (
            "config.php".to_string(),
            arr(&[("a", PhpValue::Int(1)), ("b", PhpValue::Int(2))]),
        ),
        ("nothing.config.php".to_string(), PhpValue::Null),
        ("x.config.php".to_string(), PhpValue::str("not an array")),
        ("zz.config.php".to_string(), arr(&[("a", PhpValue::Int(9))])),
    ];
    let m = merge_config(&files);
    assert_eq!(m, arr(&[("a", PhpValue::Int(9)), ("b", PhpValue::Int(2))]));
    assert_eq!(merge_config(&[]), PhpValue::Array(PhpArray::new()));
}

#[test]
fn extra_config_names() {
    for good in [
        "zz.config.php",
        "10.config.php",
        "a.b.config.php",
        "redis.config.php",
    ] {
        assert!(is_extra_config_name(good), "{good}");
    }
    for bad in [
        "config.php",
        ".config.php",
        ".hidden.config.php",
        "config.sample.php",
        "x.config.php.bak",
        "x.config.PHP",
    ] {
        assert!(!is_extra_config_name(bad), "{bad}");
    }
}

#[test]
fn natural_order_examples() {
    let mut names: Vec<String> = [
        "b.config.php",
        "10.config.php",
        "9.config.php",
        "a10.config.php",
        "a9.config.php",
        "A.config.php",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    config_file_order(&mut names);
    assert_eq!(
        names,
        [
            "9.config.php",
            "10.config.php",
            "A.config.php",
            "a9.config.php",
            "a10.config.php",
            "b.config.php"
        ]
    );
    assert_eq!(strnatcmp(b"img12", b"img10"), Ordering::Greater);
    assert_eq!(strnatcmp(b"a", b""), Ordering::Greater);
    assert_eq!(strnatcmp(b"", b""), Ordering::Equal);
}

/// A tiny deterministic generator, so the PHP comparison is reproducible.
fn names(seed: u64, n: usize) -> Vec<String> {
    let mut x = seed;
    let alphabet = [
        "0", "00", "1", "2", "9", "10", "a", "b", "A", " ", ".", "-", "x1", "007",
    ];
    (0..n)
        .map(|_| {
            let mut s = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 1 + (x % 5) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push_str(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            s
        })
        .collect()
}

#[test]
fn strnatcmp_matches_php() {
    let a = names(1, 400);
    let b = names(2, 400);
    let input: String = a
        .iter()
        .zip(&b)
        .map(|(x, y)| format!("{x}\t{y}\n"))
        .collect();
    let code = r#"foreach (explode("\n", rtrim(stream_get_contents(STDIN), "\n")) as $l) { [$x, $y] = explode("\t", $l); echo strnatcmp($x, $y) <=> 0, "\n"; }"#;
    let (rc, out, err) = php(&["-r", code], input.as_bytes());
    assert_eq!(rc, 0, "{err}");
    let theirs: Vec<i32> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(theirs.len(), a.len());
    for ((x, y), t) in a.iter().zip(&b).zip(theirs) {
        let ours = match strnatcmp(x.as_bytes(), y.as_bytes()) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        };
        assert_eq!(ours, t, "strnatcmp({x:?}, {y:?})");
    }
}

#[test]
fn config_file_order_matches_php_glob_and_natsort() {
    for seed in 1..20u64 {
        let mut ours: Vec<String> = names(seed * 7919, 12)
            .into_iter()
            .map(|n| format!("{n}.config.php"))
            .filter(|n| is_extra_config_name(n))
            .collect();
        ours.sort();
        ours.dedup();
        let input = ours.join("\n");
        // Full paths, as glob returns them: byte order first, then natsort.
        let code = r#"$a = array_map(function ($n) { return '/srv/oc/config/' . $n; }, explode("\n", stream_get_contents(STDIN))); sort($a, SORT_STRING); natsort($a); echo implode("\n", array_map('basename', $a));"#;
        let (rc, out, err) = php(&["-r", code], input.as_bytes());
        assert_eq!(rc, 0, "{err}");
        let theirs: Vec<String> = String::from_utf8(out)
            .unwrap()
            .split('\n')
            .map(str::to_string)
            .collect();
        config_file_order(&mut ours);
        assert_eq!(ours, theirs, "seed {seed}");
    }
}

#[test]
fn merge_output_json_keeps_php_types_and_order() {
    let out = br#"{"files":["config.php","zz.config.php"],"output":{"config.php":3},"config":{"b":1,"a":[1,2],"5":"int key","05":"str key","e":[],"f":1.0,"g":-0.0,"n":null,"t":true,"o":{"0":"x","2":"y"}}}"#;
    let m = parse_merge_output(out).unwrap();
    assert_eq!(m.files, ["config.php", "zz.config.php"]);
    assert_eq!(m.output, [("config.php".to_string(), 3)]);
    let keys: Vec<Key> = m.config.as_array().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["b", "a", "5", "05", "e", "f", "g", "n", "t", "o"]
            .iter()
            .map(|k| Key::from(*k))
            .collect::<Vec<_>>()
    );
    assert_eq!(keys[2], Key::Int(5));
    assert_eq!(m.config.get("f"), Some(&PhpValue::Float(1.0)));
    assert_eq!(m.config.get("e"), Some(&PhpValue::Array(PhpArray::new())));
    assert_eq!(
        m.config
            .get("o")
            .and_then(|o| o.as_array())
            .map(|a| a.keys().cloned().collect::<Vec<_>>()),
        Some(vec![Key::Int(0), Key::Int(2)])
    );
    // Not leaking values through Debug.
    assert!(!format!("{m:?}").contains("int key"));
    for bad in [
        &b"not json"[..],
        b"[]",
        b"{}",
        br#"{"files":[1],"config":{}}"#,
        br#"{"files":[],"config":{}} trailing"#,
    ] {
        assert!(
            parse_merge_output(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let deep = format!(
        "{{\"files\":[],\"config\":{}1{}}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert!(parse_merge_output(deep.as_bytes()).is_err());
}

/// Run the snippet the way discovery does and compare with the Rust road.
fn both_roads(dir: &Path) -> (MergedConfig, MergedConfig) {
    let config_dir = dir.join("config");
    let (rc, out, err) = php(
        &["-r", MERGE_SNIPPET, "--", config_dir.to_str().unwrap()],
        b"",
    );
    assert_eq!(rc, 0, "snippet failed: {err}");
    let with_php = parse_merge_output(&out).unwrap();
    // The same, fed on standard input.
    let (rc2, out2, err2) = php(
        &["--", config_dir.to_str().unwrap()],
        merge_snippet_file().as_bytes(),
    );
    assert_eq!(rc2, 0, "snippet on stdin failed: {err2}");
    assert_eq!(out, out2);
    let without = InstanceFiles::read_local(dir)
        .unwrap()
        .merged_config()
        .unwrap();
    (with_php, without)
}

#[test]
fn php_snippet_and_rust_reader_agree_on_the_fixture_instance() {
    let (with_php, without) = both_roads(&fixtures().join("instance"));
    assert_eq!(dump(&with_php.config), dump(&without.config));
    assert_eq!(with_php.files, without.files);
    assert_eq!(with_php.output, without.output);
    assert_eq!(
        with_php.files,
        [
            "config.php",
            "9.config.php",
            "10.config.php",
            "nothing.config.php",
            "zz.config.php"
        ]
    );
    let c = &with_php.config;
    assert_eq!(c.get_str("logtimezone"), Some("Europe/Berlin")); // zz.config.php wins
    assert_eq!(c.get_str("theme"), Some("mytheme"));
    assert_eq!(c.get_str("memcache.locking"), Some("\\OC\\Memcache\\Redis"));
    assert_eq!(
        c.get_str("0"),
        Some("an integer key, renumbered by array_merge")
    );
    assert_eq!(c.get_str("1"), Some("another integer key"));
    assert_eq!(c.get_bool("installed"), Some(true));
}

#[test]
fn php_snippet_and_rust_reader_agree_on_odd_directories() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    let write = |n: &str, s: &[u8]| std::fs::write(config.join(n), s).unwrap();
    write(
        "config.php",
        b"\xEF\xBB\xBF<?php\n$CONFIG = ['a' => 1, 'installed' => true, 5 => 'five'];\n?>\n\n",
    );
    write(
        "b.config.php",
        b"<?php $CONFIG = ['a' => 2, 'list' => [1, 2]];",
    );
    write("B.config.php", b"<?php $CONFIG = ['a' => 3];");
    write("b1.config.php", b"<?php $CONFIG = 'not an array';");
    write("b01.config.php", b"<?php $CONFIG = [];");
    write(
        "b 2.config.php",
        b"<?php $CONFIG = ['a' => 4, 7 => 'seven'];",
    );
    let (with_php, without) = both_roads(dir.path());
    assert_eq!(dump(&with_php.config), dump(&without.config));
    assert_eq!(with_php.files, without.files);
    assert_eq!(with_php.output, without.output);
    assert_eq!(with_php.output, [("config.php".to_string(), 4)]);

    // No config.php: ownCloud reads the extra files alone; so does the snippet.
    std::fs::remove_file(config.join("config.php")).unwrap();
    let (rc, out, err) = php(&["-r", MERGE_SNIPPET, "--", config.to_str().unwrap()], b"");
    assert_eq!(rc, 0, "{err}");
    let m = parse_merge_output(&out).unwrap();
    assert!(!m.files.iter().any(|f| f == "config.php"));
}

#[test]
fn php_snippet_reports_failures_by_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(config.join("config.php"), b"<?php $CONFIG = ['a' => ];").unwrap();
    let (rc, _, err) = php(&["-r", MERGE_SNIPPET, "--", config.to_str().unwrap()], b"");
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("ParseError"), "{err}");
    std::fs::write(
        config.join("config.php"),
        b"<?php $CONFIG = ['a' => \"\\xff\"];",
    )
    .unwrap();
    let (rc, _, err) = php(&["-r", MERGE_SNIPPET, "--", config.to_str().unwrap()], b"");
    assert_eq!(rc, 3, "{err}");
    assert!(err.contains("JSON"), "{err}");
    let (rc, _, err) = php(&["-r", MERGE_SNIPPET, "--", "/nonexistent/dir"], b"");
    assert_eq!(rc, 3, "{err}");
}
