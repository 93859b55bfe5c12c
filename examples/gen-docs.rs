//! Man pages and shell completions, generated from the command line's clap definition
//! (`ocmigrate::cli::Cli`), so they can never disagree with `--help`.
//!
//! `cargo run --example gen-docs -- OUT_DIR` writes `OUT_DIR/man/ocmigrate.1` plus one page per
//! command (`ocmigrate-migrate.1`, …; hidden commands left out) and
//! `OUT_DIR/completions/{ocmigrate.bash,_ocmigrate,ocmigrate.fish,_ocmigrate.ps1,ocmigrate.elv}`.
//! Install e.g. with `cp OUT_DIR/man/*.1 /usr/local/share/man/man1/` and
//! `cp OUT_DIR/completions/ocmigrate.bash /etc/bash_completion.d/ocmigrate`.

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cargo run --example gen-docs -- OUT_DIR");
        std::process::exit(2);
    };
    let man = out.join("man");
    let comp = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&comp)?;
    clap_mangen::generate_to(ocmigrate::cli::Cli::command(), &man)?;
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::PowerShell,
        Shell::Elvish,
    ] {
        let mut cmd = ocmigrate::cli::Cli::command();
        let p = clap_complete::generate_to(shell, &mut cmd, "ocmigrate", &comp)?;
        println!("{}", p.display());
    }
    for e in std::fs::read_dir(&man)? {
        println!("{}", e?.path().display());
    }
    Ok(())
}
