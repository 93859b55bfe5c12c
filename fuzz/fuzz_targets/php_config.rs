//! The config.php reader (`src/instance/phpconfig.rs`) on arbitrary bytes: `parse_php_file`,
//! `parse_config` and `read_version_php`, plus the reader of the PHP merge snippet's JSON output
//! (`parse_merge_output`). They must return a value or an error, never panic, and an error's line
//! and column must lie inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocmigrate::instance::{
    merge::parse_merge_output, parse_config, parse_php_file, read_version_php,
};

fuzz_target!(|data: &[u8]| {
    match parse_php_file(data) {
        Ok(file) => {
            // parse_config is parse_php_file plus a lookup: it must agree on success.
            let cfg = parse_config(data).expect("parse_config agrees with parse_php_file");
            assert_eq!(
                cfg.is_null(),
                file.var("CONFIG").is_none_or(|v| v.is_null())
            );
        }
        Err(e) => {
            let lines = 1 + data.iter().filter(|&&b| b == b'\n').count();
            assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
            assert!(e.column >= 1 && e.column <= data.len() + 1);
            assert!(parse_config(data).is_err());
            let _ = e.to_string();
        }
    }
    let _ = read_version_php(data);
    let _ = parse_merge_output(data);
});
