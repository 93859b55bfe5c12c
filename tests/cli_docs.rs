//! The command line's documentation, without the lab: every command's `--help` shows an example
//! and the exit codes, and the man pages and shell completions generated from the same clap
//! definition (`examples/gen-docs.rs`) name every command.

use clap::CommandFactory;
use std::process::Command;

fn visible_commands() -> Vec<String> {
    ocmigrate::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

#[test]
fn every_command_help_has_an_example_and_the_exit_codes() {
    let cmds = visible_commands();
    for must in ["init", "plan", "migrate", "status", "rollback", "dns"] {
        assert!(cmds.iter().any(|c| c == must), "no `{must}` in {cmds:?}");
    }
    for c in &cmds {
        let out = Command::new(env!("CARGO_BIN_EXE_ocmigrate"))
            .args([c.as_str(), "--help"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{c} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Example"),
            "`ocmigrate {c} --help` has no example:\n{help}"
        );
        assert!(
            help.contains(&format!("ocmigrate {c}")),
            "`ocmigrate {c} --help`'s example does not use the command:\n{help}"
        );
        assert!(help.contains("Exit status:"), "{c} --help:\n{help}");
    }
}

#[test]
fn man_pages_and_completions_name_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man");
    std::fs::create_dir_all(&man).unwrap();
    clap_mangen::generate_to(ocmigrate::cli::Cli::command(), &man).unwrap();
    let top = std::fs::read_to_string(man.join("ocmigrate.1")).unwrap();
    assert!(top.starts_with(".ie") || top.contains(".TH"), "{top}");
    for c in visible_commands() {
        let page = std::fs::read_to_string(man.join(format!("ocmigrate-{c}.1")))
            .unwrap_or_else(|e| panic!("no man page for {c}: {e}"));
        assert!(
            page.contains("Example"),
            "man page of {c} lacks the example"
        );
        assert!(top.contains(&c), "ocmigrate.1 does not list {c}");
    }
    assert!(
        !man.join("ocmigrate-agent.1").exists(),
        "the hidden agent command got a man page"
    );
    let mut bash = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::Bash,
        &mut ocmigrate::cli::Cli::command(),
        "ocmigrate",
        &mut bash,
    );
    let bash = String::from_utf8(bash).unwrap();
    for c in visible_commands() {
        assert!(bash.contains(&c), "bash completion lacks {c}");
    }
    assert!(
        bash.contains("--stop-after"),
        "bash completion lacks migrate's options"
    );
}
