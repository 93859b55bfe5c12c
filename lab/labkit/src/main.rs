//! labkit: test support for the ocmigrate lab (see lab/README.md and lab/labkit/README.md).
//!
//! `labkit instance …` makes a deterministic ownCloud or Nextcloud instance (config, data
//! directory, apps-external, the database as one SQL file, secrets) from a seed.

mod instance;
mod php;
mod rng;
mod sql;
mod tree;

use instance::{Db, Flavor, Opts};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "\
usage: labkit instance --flavor owncloud|nextcloud --db sqlite|mysql|pgsql --out DIR
                       [--users N] [--files N] [--bytes SIZE] [--seed S] [--sql FILE]
                       [--secrets DIR] [--release-out DIR] [--extra-config] [--bcrypt-cost N]

Writes DIR/config/, DIR/data/, DIR/apps-external/ (ownCloud) of an installed instance whose
install root is /var/www/owncloud, and the database (schema and rows) as DIR/db.sql or --sql FILE.
--secrets DIR gets admin-password, users.tsv, dbpassword and instance.env; --release-out DIR gets
the release's apps/<app>/appinfo/info.xml files (the versions the database says are installed).
--files counts the files under the users' files/ folders (versions and trash come on top); --bytes
(K, M, G suffixes: powers of 1024) is their total size. Defaults: 3 users, 300 files, 20M, seed 1.

example: labkit instance --flavor owncloud --db mysql --users 3 --files 300 --bytes 20M --seed 1 --out /tmp/i
";

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("bad size {s:?}"))
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        flavor: Flavor::Owncloud,
        db: Db::Sqlite,
        users: 3,
        files: 300,
        bytes: 20 << 20,
        seed: 1,
        out: PathBuf::new(),
        sql: None,
        secrets: None,
        release_out: None,
        extra_config: false,
        bcrypt_cost: 10,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        if key == "--extra-config" {
            o.extra_config = true;
            continue;
        }
        let v = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| format!("{key} needs a value"))?
                .clone(),
        };
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{key}: not a number: {v:?}"))
        };
        match key {
            "--flavor" => {
                o.flavor = match v.as_str() {
                    "owncloud" => Flavor::Owncloud,
                    "nextcloud" => Flavor::Nextcloud,
                    _ => return Err(format!("--flavor must be owncloud or nextcloud, not {v:?}")),
                }
            }
            "--db" => {
                o.db = match v.as_str() {
                    "sqlite" => Db::Sqlite,
                    "mysql" => Db::Mysql,
                    "pgsql" => Db::Pgsql,
                    _ => return Err(format!("--db must be sqlite, mysql or pgsql, not {v:?}")),
                }
            }
            "--users" => {
                o.users = num(&v)?
                    .try_into()
                    .map_err(|_| "--users too large".to_string())?
            }
            "--files" => o.files = num(&v)?,
            "--bytes" => o.bytes = parse_size(&v)?,
            "--seed" => o.seed = num(&v)?,
            "--out" => o.out = PathBuf::from(v),
            "--sql" => o.sql = Some(PathBuf::from(v)),
            "--secrets" => o.secrets = Some(PathBuf::from(v)),
            "--release-out" => o.release_out = Some(PathBuf::from(v)),
            "--bcrypt-cost" => {
                o.bcrypt_cost = num(&v)?
                    .try_into()
                    .map_err(|_| "--bcrypt-cost too large".to_string())?;
                if !(4..=31).contains(&o.bcrypt_cost) {
                    return Err("--bcrypt-cost must be 4..31".into());
                }
            }
            _ => return Err(format!("unknown option {key:?}")),
        }
    }
    if o.out.as_os_str().is_empty() {
        return Err("--out DIR is required".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("instance") => {}
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    let o = match parse(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("labkit: {e}");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    match instance::run(&o) {
        Ok(made) => {
            println!(
                "files={} dirs={} bytes={} rows={} seconds={:.2}",
                made.files,
                made.dirs,
                made.bytes,
                made.rows,
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("labkit: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20M"), Ok(20 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn options() {
        let a: Vec<String> = [
            "--flavor",
            "nextcloud",
            "--db=pgsql",
            "--out",
            "/tmp/x",
            "--extra-config",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o = parse(&a).unwrap();
        assert_eq!(o.flavor, Flavor::Nextcloud);
        assert_eq!(o.db, Db::Pgsql);
        assert!(o.extra_config);
        assert_eq!(o.users, 3);
        assert!(parse(&["--db".to_string(), "oracle".to_string()]).is_err());
    }
}
