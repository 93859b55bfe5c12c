use super::*;
use crate::instance::testphp::{dump, php_lint, php_read_file};
use std::path::{Path, PathBuf};

fn cfg(src: &str) -> PhpValue {
    parse_config(src.as_bytes()).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

/// The value of `$v` in `<?php $v = EXPR;`.
fn val(expr: &str) -> PhpValue {
    let src = format!("<?php $v = {expr};");
    parse_php_file(src.as_bytes())
        .unwrap_or_else(|e| panic!("{expr:?}: {e}"))
        .var("v")
        .cloned()
        .expect("$v is set")
}

fn err(src: &str) -> ParseError {
    match parse_php_file(src.as_bytes()) {
        Ok(f) => panic!("{src:?} was accepted: {:?}", f.vars),
        Err(e) => e,
    }
}

fn s(x: &str) -> PhpValue {
    PhpValue::str(x)
}

fn list(items: Vec<PhpValue>) -> PhpValue {
    let mut a = PhpArray::new();
    for i in items {
        a.push(i).unwrap();
    }
    PhpValue::Array(a)
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/phpconfig_fixtures")
}

#[test]
fn var_export_format() {
    let c = cfg("<?php\n$CONFIG = array (\n  'instanceid' => 'oc123',\n  'trusted_domains' => \n  array (\n    0 => 'localhost',\n  ),\n  'installed' => true,\n  'x' => NULL,\n  'f' => 1.0E+25,\n  'nul' => 'a' . \"\\0\" . 'b',\n);\n");
    assert_eq!(c.get_str("instanceid"), Some("oc123"));
    assert_eq!(c.get("trusted_domains"), Some(&list(vec![s("localhost")])));
    assert_eq!(c.get_bool("installed"), Some(true));
    assert_eq!(c.get("x"), Some(&PhpValue::Null));
    assert_eq!(c.get("f"), Some(&PhpValue::Float(1.0e25)));
    assert_eq!(c.get_bytes("nul"), Some(&b"a\0b"[..]));
}

#[test]
fn short_syntax_comments_and_trailing_commas() {
    let c =
        cfg("<?php\n// one\n# two\n/* three */ $CONFIG = [ 'a' => 1, /* in */ 'b' => [2, 3,], ];");
    assert_eq!(c.get_int("a"), Some(1));
    assert_eq!(
        c.get("b"),
        Some(&list(vec![PhpValue::Int(2), PhpValue::Int(3)]))
    );
}

#[test]
fn keywords_in_any_case() {
    assert_eq!(val("TRUE"), PhpValue::Bool(true));
    assert_eq!(val("tRuE"), PhpValue::Bool(true));
    assert_eq!(val("False"), PhpValue::Bool(false));
    assert_eq!(val("NULL"), PhpValue::Null);
    assert_eq!(val("\\true"), PhpValue::Bool(true));
    assert_eq!(val("ARRAY(1)"), list(vec![PhpValue::Int(1)]));
    assert_eq!(val("Array ( )"), PhpValue::Array(PhpArray::new()));
}

#[test]
fn strings_and_escapes() {
    assert_eq!(val(r"'a\'b\\c\nd'"), s(r"a'b\c\nd"));
    assert_eq!(val(r#""a\tb\nc\\d\$e\"f""#), s("a\tb\nc\\d$e\"f"));
    assert_eq!(val(r#""\x41\x4a\x4""#), s("AJ\x04"));
    assert_eq!(val(r#""\101\60\0""#), s("A0\0"));
    assert_eq!(val(r#""\400""#), s("\0")); // PHP keeps the low byte (with a warning)
    assert_eq!(val(r#""\u{e9}\u{1F600}\u{000041}""#), s("é😀A"));
    assert_eq!(val(r#""\u{D800}""#), PhpValue::Str(vec![0xED, 0xA0, 0x80]));
    assert_eq!(val(r#""\q\{\xg\u0041""#), s(r"\q\{\xg\u0041"));
    assert_eq!(val(r#""\e\v\f\r""#), s("\x1b\x0b\x0c\r"));
    assert_eq!(val(r#""a $ b {x} $""#), s("a $ b {x} $"));
    assert_eq!(val("'multi\nline'"), s("multi\nline"));
    assert_eq!(val("'bytes \u{ff}'"), s("bytes \u{ff}"));
    assert_eq!(
        parse_php_file(b"<?php $v = '\xff\xfe';").unwrap().var("v"),
        Some(&PhpValue::Str(vec![0xff, 0xfe]))
    );
}

#[test]
fn interpolation_is_refused_clearly() {
    for (src, what) in [
        (r#"<?php $v = "a $x b";"#, "$x"),
        (r#"<?php $v = "a {$x} b";"#, "{$"),
        (r#"<?php $v = "a ${x} b";"#, "${"),
        (r#"<?php $v = "a\{$x}";"#, "{$"),
    ] {
        let e = err(src);
        assert!(e.needs_php, "{src}: {e}");
        assert!(e.message.contains(what), "{src}: {e}");
        assert!(e.to_string().contains("needs PHP"), "{e}");
    }
}

#[test]
fn integers() {
    assert_eq!(val("42"), PhpValue::Int(42));
    assert_eq!(val("-42"), PhpValue::Int(-42));
    assert_eq!(val("+42"), PhpValue::Int(42));
    assert_eq!(val("0x1F"), PhpValue::Int(31));
    assert_eq!(val("0XfF"), PhpValue::Int(255));
    assert_eq!(val("0b101"), PhpValue::Int(5));
    assert_eq!(val("0755"), PhpValue::Int(0o755));
    assert_eq!(val("0o17"), PhpValue::Int(15));
    assert_eq!(val("1_000_000"), PhpValue::Int(1_000_000));
    assert_eq!(val("0"), PhpValue::Int(0));
    assert_eq!(val("9223372036854775807"), PhpValue::Int(i64::MAX));
    assert_eq!(val("9223372036854775808"), PhpValue::Float(2f64.powi(63)));
    assert_eq!(val("-9223372036854775807-1"), PhpValue::Int(i64::MIN));
    assert_eq!(
        val("-9223372036854775808"),
        PhpValue::Float(-(2f64.powi(63)))
    );
    assert_eq!(val("0xFFFFFFFFFFFFFFFF"), PhpValue::Float(2f64.powi(64)));
    for bad in ["0x", "08", "1_", "1__0", "0b2", "12abc", "0x_1"] {
        let e = err(&format!("<?php $v = {bad};"));
        assert!(!e.needs_php, "{bad}: {e}");
    }
}

#[test]
fn floats() {
    assert_eq!(val("1.5"), PhpValue::Float(1.5));
    assert_eq!(val(".5"), PhpValue::Float(0.5));
    assert_eq!(val("1."), PhpValue::Float(1.0));
    assert_eq!(val("1e3"), PhpValue::Float(1000.0));
    assert_eq!(val("1E-3"), PhpValue::Float(0.001));
    assert_eq!(val("2.5e+2"), PhpValue::Float(250.0));
    assert_eq!(val("1_0.2_5"), PhpValue::Float(10.25));
    assert_eq!(val("09.5"), PhpValue::Float(9.5));
    assert_eq!(val("1e400"), PhpValue::Float(f64::INFINITY));
    assert_eq!(val("INF"), PhpValue::Float(f64::INFINITY));
    assert!(matches!(val("NAN"), PhpValue::Float(f) if f.is_nan()));
    match val("-0.0") {
        PhpValue::Float(f) => assert!(f == 0.0 && f.is_sign_negative()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn arithmetic_and_concatenation() {
    assert_eq!(val("60 * 60 * 24"), PhpValue::Int(86400));
    assert_eq!(val("7 / 2"), PhpValue::Float(3.5));
    assert_eq!(val("8 / 2"), PhpValue::Int(4));
    assert_eq!(val("-7 % 3"), PhpValue::Int(-1));
    assert_eq!(val("1 + 2 * 3"), PhpValue::Int(7));
    assert_eq!(val("(1 + 2) * 3"), PhpValue::Int(9));
    assert_eq!(val("2 - -3"), PhpValue::Int(5));
    assert_eq!(
        val("9223372036854775807 + 1"),
        PhpValue::Float(2f64.powi(63))
    );
    assert_eq!(val("1 - 0.5"), PhpValue::Float(0.5));
    assert_eq!(val("'a' . 'b' . 'c'"), s("abc"));
    assert_eq!(val("'n' . 1 . true . false . null"), s("n11"));
    assert_eq!(val("'x' . (1 + 2)"), s("x3"));
    assert_eq!(val("'x' . 2 * 3"), s("x6"));
    assert_eq!(val("'/srv' . '/' . 'data'"), s("/srv/data"));
    let e = err("<?php $v = 'a' . 1 + 2;");
    assert!(e.needs_php && e.message.contains("PHP 7 and PHP 8"), "{e}");
    let e = err("<?php $v = 1 / 0;");
    assert!(
        !e.needs_php && e.message.contains("division by zero"),
        "{e}"
    );
    let e = err("<?php $v = 'a' . 1.5;");
    assert!(e.needs_php, "{e}");
    let e = err("<?php $v = 'a' + 1;");
    assert!(e.needs_php, "{e}");
    let e = err("<?php $v = 2 ** 3;");
    assert!(e.needs_php && e.message.contains("**"), "{e}");
}

#[test]
fn implicit_keys_follow_php() {
    let v = val("['a', 5 => 'b', 'c', '10' => 'd', 'e', '07' => 'f', 'g', -1 => 'h']");
    let keys: Vec<Key> = v.as_array().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            Key::Int(0),
            Key::Int(5),
            Key::Int(6),
            Key::Int(10),
            Key::Int(11),
            Key::Str(b"07".to_vec()),
            Key::Int(12),
            Key::Int(-1),
        ]
    );
    // After only negative keys, PHP 7 and PHP 8 disagree: refused.
    let e = err("<?php $v = [-5 => 'a', 'b'];");
    assert!(e.needs_php && e.message.contains("PHP 7"), "{e}");
    let e = err("<?php $v = [9223372036854775807 => 'a', 'b'];");
    assert!(e.needs_php, "{e}");
}

#[test]
fn duplicate_keys_overwrite_in_place() {
    let v = val("['k' => 1, 'j' => 2, 'k' => 3, 1 => 'x', '1' => 'y', true => 'z']");
    let a = v.as_array().unwrap();
    let got: Vec<(Key, PhpValue)> = a.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(
        got,
        [
            (Key::from("k"), PhpValue::Int(3)),
            (Key::from("j"), PhpValue::Int(2)),
            (Key::Int(1), s("z")),
        ]
    );
}

#[test]
fn indexed_assignments() {
    let f = parse_php_file(b"<?php $CONFIG = ['a' => 1]; $CONFIG['b'] = 2; $CONFIG['c']['d'][] = 3; $CONFIG['c']['d'][] = 4; $x[] = 'new';").unwrap();
    let c = f.var("CONFIG").unwrap();
    assert_eq!(c.get_int("b"), Some(2));
    assert_eq!(
        c.get("c").and_then(|c| c.get("d")),
        Some(&list(vec![PhpValue::Int(3), PhpValue::Int(4)]))
    );
    assert_eq!(f.var("x"), Some(&list(vec![s("new")])));
    let e = err("<?php $s = 'str'; $s['x'] = 1;");
    assert!(e.needs_php, "{e}");
}

#[test]
fn tags_bom_and_inline_output() {
    let f = parse_php_file(b"\xEF\xBB\xBF<?php $CONFIG = ['a' => 1]; ?>\n").unwrap();
    assert_eq!(f.inline_output, b"\xEF\xBB\xBF");
    assert_eq!(f.var("CONFIG").unwrap().get_int("a"), Some(1));
    let f = parse_php_file(b"\n\n<?PHP\r\n$CONFIG = [] ?>trailing<?php $x = 1;").unwrap();
    assert_eq!(f.inline_output, b"\n\ntrailing");
    assert_eq!(f.var("x"), Some(&PhpValue::Int(1)));
    let f = parse_php_file(b"<?php").unwrap();
    assert!(f.vars.is_empty() && f.inline_output.is_empty());
    let f = parse_php_file(b"no php at all").unwrap();
    assert_eq!(f.inline_output, b"no php at all");
    assert_eq!(parse_config(b"<?php $other = 1;").unwrap(), PhpValue::Null);
    let e = err("<?= 'x' ?>");
    assert!(e.needs_php, "{e}");
    let e = err("<? $x = 1;");
    assert!(e.needs_php, "{e}");
    // A `//` comment ends at `?>`.
    let f = parse_php_file(b"<?php $x = 1; // c ?>out").unwrap();
    assert_eq!(f.inline_output, b"out");
}

#[test]
fn what_needs_php_is_named_with_position() {
    let cases: &[(&str, usize, usize, &str)] = &[
        (
            "<?php\n$CONFIG = [\n  'datadirectory' => getenv('DATA'),\n];",
            3,
            22,
            "getenv",
        ),
        (
            "<?php\n$CONFIG = ['x' => __DIR__ . '/data'];",
            2,
            19,
            "__DIR__",
        ),
        (
            "<?php\n$CONFIG = ['x' => SOME_CONSTANT];",
            2,
            19,
            "SOME_CONSTANT",
        ),
        ("<?php\n$CONFIG = ['x' => $other];", 2, 19, "$other"),
        (
            "<?php\n$CONFIG = ['x' => \\OC\\Foo::BAR];",
            2,
            19,
            "\\OC\\Foo",
        ),
        ("<?php\nif (getenv('X')) {\n  $CONFIG = [];\n}", 2, 1, "if"),
        ("<?php\ninclude 'other.php';", 2, 1, "include"),
        ("<?php\n$CONFIG = ['x' => (int) '5'];", 2, 19, "cast"),
        ("<?php\n$CONFIG = ['x' => true ? 1 : 2];", 2, 24, "ternary"),
        ("<?php\n$CONFIG = ['x' => $a ?? 1];", 2, 19, "$a"),
        ("<?php\n$CONFIG = [...$a];", 2, 12, "spread"),
        (
            "<?php\n$CONFIG = ['x' => <<<EOT\nhi\nEOT];",
            2,
            19,
            "heredoc",
        ),
        ("<?php\n$CONFIG = ['x' => new Foo()];", 2, 19, "new"),
        ("<?php\n$CONFIG .= 'x';", 2, 9, "compound"),
        ("<?php\n$CONFIG = ['x' => 'é' . `ls`];", 2, 25, "shell"),
        ("<?php\n$CONFIG = ['x' => 1 | 2];", 2, 21, "|"),
        ("<?php\n$CONFIG = ['x' => 1 and 2];", 2, 21, "and"),
        ("<?php\n#[Attr]\n$CONFIG = [];", 2, 1, "attribute"),
        ("<?php\n$$name = 1;", 2, 1, "variable variable"),
    ];
    for (src, line, column, what) in cases {
        let e = err(src);
        assert!(e.needs_php, "{src:?}: {e}");
        assert_eq!((e.line, e.column), (*line, *column), "{src:?}: {e}");
        assert!(e.message.contains(what), "{src:?}: {e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("line {line}, column {column}: "))
                && shown.contains("needs PHP"),
            "{shown}"
        );
    }
}

#[test]
fn syntax_errors_are_positioned() {
    let cases: &[(&str, usize, usize, &str)] = &[
        (
            "<?php\n$CONFIG = array(\n  'a' => 1\n  'b' => 2,\n);",
            4,
            3,
            "unexpected string, expected `,` or `)`",
        ),
        (
            "<?php\n$CONFIG = ['a' => 'unterminated];",
            2,
            19,
            "never closed",
        ),
        (
            "<?php\n$CONFIG = ['a' => 1",
            2,
            20,
            "array opened at line 2, column 11",
        ),
        ("<?php\n$CONFIG = ['a' => 1]", 2, 21, "`;` is missing"),
        ("<?php\n$CONFIG = [1,,2];", 2, 14, "empty array element"),
        ("<?php\n/* never closed", 2, 1, "never closed"),
        ("<?php\n$CONFIG = ['é' => 1 2];", 2, 21, "unexpected `2`"),
        ("<?php\n$CONFIG = [\"\\u{110000}\"];", 2, 13, "U+10FFFF"),
        ("<?php\n$CONFIG = 'a'.5;", 2, 14, "number right after"),
        ("<?php\n$CONFIG = ;", 2, 11, "expected a value"),
        ("<?php\n)", 2, 1, "unexpected `)`"),
    ];
    for (src, line, column, what) in cases {
        let e = err(src);
        assert!(!e.needs_php, "{src:?}: {e}");
        assert_eq!((e.line, e.column), (*line, *column), "{src:?}: {e}");
        assert!(e.message.contains(what), "{src:?}: {e}");
        assert!(!e.to_string().contains("needs PHP"), "{e}");
    }
}

#[test]
fn hostile_input_is_refused_without_panic() {
    let deep = format!("<?php $v = {}1{};", "[".repeat(10_000), "]".repeat(10_000));
    let e = err(&deep);
    assert!(e.message.contains("nested deeper than 64"), "{e}");
    let deep = format!("<?php $v = {}1{};", "array(".repeat(65), ")".repeat(65));
    assert!(err(&deep).message.contains("nested"));
    let ok = format!("<?php $v = {}1{};", "[".repeat(63), "]".repeat(63));
    parse_php_file(ok.as_bytes()).unwrap();
    let signs = format!("<?php $v = {}1;", "- ".repeat(10_000));
    assert!(err(&signs).message.contains("nested"));
    let parens = format!("<?php $v = {}1{};", "(".repeat(10_000), ")".repeat(10_000));
    assert!(err(&parens).message.contains("nested"));
    let idx = format!("<?php $v{} = 1;", "[]".repeat(100));
    assert!(err(&idx).message.contains("indices"));
    let big = vec![b' '; MAX_INPUT + 1];
    let e = parse_php_file(&big).unwrap_err();
    assert!(e.message.contains("at most"), "{e}");
    // Many keys stay linear (the index is hashed).
    let mut many = String::from("<?php $v = [");
    for i in 0..100_000 {
        many.push_str(&format!("'k{i}' => {i}, 'k{i}' => {i},"));
    }
    many.push_str("];");
    assert_eq!(parse_config(b"<?php").unwrap(), PhpValue::Null);
    let f = parse_php_file(many.as_bytes()).unwrap();
    assert_eq!(f.var("v").unwrap().as_array().unwrap().len(), 100_000);
    // Long literals near the size limit.
    let long_int = format!("<?php $v = 1{};", "0".repeat(MAX_INPUT - 20));
    assert_eq!(
        parse_php_file(long_int.as_bytes()).unwrap().var("v"),
        Some(&PhpValue::Float(f64::INFINITY))
    );
    let long_float = format!("<?php $v = 0.{}1;", "0".repeat(MAX_INPUT - 20));
    assert_eq!(
        parse_php_file(long_float.as_bytes()).unwrap().var("v"),
        Some(&PhpValue::Float(0.0))
    );
    let long_hex = format!("<?php $v = 0x{};", "f".repeat(MAX_INPUT - 20));
    assert!(parse_php_file(long_hex.as_bytes()).is_ok());
    let concat = format!("<?php $v = 'ab'{};", " . 'ab'".repeat(400_000));
    assert_eq!(
        parse_php_file(concat.as_bytes())
            .unwrap()
            .var("v")
            .and_then(|v| v.as_bytes())
            .map(<[u8]>::len),
        Some(800_002)
    );
    // Every prefix of a real config either parses or fails cleanly.
    let real = std::fs::read(fixtures().join("handwritten.php")).unwrap();
    for n in 0..real.len() {
        let _ = parse_php_file(&real[..n]);
    }
    // Arbitrary bytes.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..2000 {
        let mut buf = b"<?php $v = ".to_vec();
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let alphabet = b"[](),=>'\"\\$x0123456789.+-*/%eE_ \n#/*?<>{}uatrnl";
            buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        let _ = parse_php_file(&buf);
    }
}

/// Snippets whose value must equal what real PHP makes of them, byte for byte and type for type.
/// Kept to syntax PHP 7.4 accepts too (no `0o` octal), so the comparison runs on ownCloud's PHP.
const SNIPPETS: &[&str] = &[
    "<?php $a = [1, 'two', 3.0, true, null, [], ['x' => ['y' => 'z']]];",
    "<?php $a = ['a', 5 => 'b', 'c', '10' => 'd', 'e', '07' => 'f', 'g', -1 => 'h', '-0' => 'i'];",
    "<?php $a = [true => 't', false => 'f', null => 'n', 2.9 => 'float', '3' => 'three', 'k' => 1, 'k' => 2];",
    "<?php $a = \"\\x41\\101\\u{1F600}\\u{0}\\e\\v\\f\\q\\{ \\$ $ {\\\\\";",
    "<?php $a = '\\\\\\'\\n\\q';",
    "<?php $a = 60 * 60 * 24; $b = 7 / 2; $c = 8 / 2; $d = -7 % 3; $e = 9223372036854775807 + 1; $f = -9223372036854775807 - 2;",
    "<?php $a = 3037000500 * 3037000500; $b = -(-9223372036854775807 - 1); $c = 1 - 0.5; $d = 2 * 0.1;",
    "<?php $a = 'x' . 1 . true . false . null . (2 + 3) . 2 * 4;",
    "<?php $a = [0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFFFFFF, 0b1111, 0777, 1_2_3];",
    "<?php\r\n$a = [\r\n  'x' => 1,\r\n  'y' => \"a\r\nb\",\r\n];\r\n",
    "<?php $a = [1e308 * 10, -0.0, .5, 1., 1e-320, 4.9e-324, 0.1 + 0.2, 1.7976931348623157e308];",
    "\u{feff}<?php $a = 1; ?>\nafter<?php $b = 2 ?>\r\n",
    "  \n<?php\r\n$a = 1; # comment ?>x",
    "<?php $a['x']['y'][] = 1; $a['x']['y'][] = 2; $a[] = 3; $b = [5 => 1]; $b[] = 2;",
    "<?php $a = ARRAY('k' => Array(1, 2,),); $b = \\TRUE; $c = \\null;",
];

#[test]
fn snippets_match_real_php() {
    let dir = tempfile::tempdir().unwrap();
    for (i, src) in SNIPPETS.iter().enumerate() {
        let path = dir.path().join(format!("s{i}.php"));
        std::fs::write(&path, src).unwrap();
        compare_with_php(&path);
    }
}

#[test]
fn fixtures_match_real_php() {
    let mut n = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "php") {
            compare_with_php(&path);
            n += 1;
        }
    }
    for name in [
        "config.php",
        "zz.config.php",
        "9.config.php",
        "10.config.php",
    ] {
        compare_with_php(&fixtures().join("instance/config").join(name));
        n += 1;
    }
    compare_with_php(&fixtures().join("instance/version.php"));
    assert!(n >= 9, "only {n} fixtures found");
}

fn compare_with_php(path: &Path) {
    let src = std::fs::read(path).unwrap();
    let ours = parse_php_file(&src).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (php_vars, php_out) =
        php_read_file(path).unwrap_or_else(|e| panic!("php failed on {}: {e}", path.display()));
    assert_eq!(
        dump(&PhpValue::Array(ours.vars.clone())),
        php_vars,
        "{}: values differ from PHP's\nours: {:?}",
        path.display(),
        ours.vars
    );
    let hex: String = ours
        .inline_output
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, php_out, "{}: inline output differs", path.display());
}

/// What we call "needs PHP" is valid PHP; what we call a syntax error, PHP rejects too.
#[test]
fn error_kinds_agree_with_php_lint() {
    let dir = tempfile::tempdir().unwrap();
    let needs: &[&str] = &[
        "<?php $CONFIG = ['d' => getenv('X')];",
        "<?php $CONFIG = ['d' => __DIR__ . '/data'];",
        "<?php $CONFIG = ['d' => FOO];",
        "<?php $CONFIG = ['d' => \"a $x\"];",
        "<?php if (true) { $CONFIG = []; }",
        "<?php $CONFIG = ['d' => (int) '1'];",
        "<?php $CONFIG = ['d' => 1 ?: 2];",
        "<?php $CONFIG = ['d' => 'a' . 1 + 2];",
        "<?php $CONFIG = [-5 => 'a', 'b'];",
        "<?php $CONFIG = ['d' => 2 ** 3];",
        "<?php $CONFIG = ['d' => <<<'EOT'\nx\nEOT\n];",
        "<?php $CONFIG = [...[1]];",
        "<?php $CONFIG = ['d' => !true];",
    ];
    let broken: &[&str] = &[
        "<?php $CONFIG = ['a' => 1 'b' => 2];",
        "<?php $CONFIG = ['a' => 'x];",
        "<?php $CONFIG = ['a' => 1]",
        "<?php $CONFIG = [1,,2];",
        "<?php $CONFIG = [08];",
        "<?php $CONFIG = [1_];",
        "<?php $CONFIG = [\"\\u{}\"];",
        "<?php $CONFIG = ['a'.5];",
        "<?php $CONFIG = [12abc];",
    ];
    for (i, src) in needs.iter().enumerate() {
        let p = dir.path().join(format!("n{i}.php"));
        std::fs::write(&p, src).unwrap();
        let e = err(src);
        assert!(e.needs_php, "{src}: {e}");
        assert!(
            php_lint(&p),
            "php -l rejects {src}, yet we said it needs PHP"
        );
    }
    for (i, src) in broken.iter().enumerate() {
        let p = dir.path().join(format!("b{i}.php"));
        std::fs::write(&p, src).unwrap();
        let e = err(src);
        assert!(!e.needs_php, "{src}: {e}");
        assert!(
            !php_lint(&p),
            "php -l accepts {src}, yet we called it broken"
        );
    }
}
