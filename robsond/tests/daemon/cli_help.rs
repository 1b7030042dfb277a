//! The README's command table and `--help` agree: every command of the
//! table exists with exactly the options and arguments the command line
//! defines (read from the clap definitions, so a new option needs only its
//! README row), every option shown in the table appears in the real
//! `robsond … --help`, and every help page names DATABASE_URL and the exit
//! codes. Needs no database.

use std::collections::{BTreeMap, BTreeSet};

use clap::CommandFactory;
use robsond::cli::Cli;

use crate::support::{robsond, texts};

/// Options and positional arguments of one command.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    options: BTreeSet<String>,
    arguments: BTreeSet<String>,
}

/// Every command path of the clap definitions that takes arguments or has
/// no subcommands (a path like `streams` that only groups is left out).
fn clap_commands() -> BTreeMap<Vec<String>, Shape> {
    fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut BTreeMap<Vec<String>, Shape>) {
        let mut shape = Shape::default();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            match arg.get_long() {
                Some(long) => shape.options.insert(format!("--{long}")),
                None => shape.arguments.insert(id.to_uppercase()),
            };
        }
        let subcommands: Vec<&clap::Command> = cmd
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        let groups_only = !subcommands.is_empty() && shape == Shape::default();
        if !path.is_empty() && !groups_only {
            out.insert(path.clone(), shape);
        }
        for sub in subcommands {
            let mut next = path.clone();
            next.push(sub.get_name().to_owned());
            walk(sub, next, out);
        }
    }
    let mut out = BTreeMap::new();
    walk(&Cli::command(), Vec::new(), &mut out);
    out
}

fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    std::fs::read_to_string(path).expect("README.md is readable")
}

/// The commands of the README's "Command line" table. A cell is
/// `robsond PATH… [--opt VALUE] ARG …`, with alternatives of the last path
/// word separated by `\|` (`streams parked [--json] \| retry KEY`).
fn readme_commands() -> BTreeMap<Vec<String>, Shape> {
    let text = readme();
    let start = text
        .find("\n## Command line")
        .expect("a Command line chapter");
    let chapter = &text[start + 1..];
    let chapter = &chapter[..chapter[3..].find("\n## ").map_or(chapter.len(), |i| i + 3)];
    let mut out = BTreeMap::new();
    for line in chapter.lines().filter(|l| l.starts_with("| `robsond")) {
        let cell = line.trim_start_matches("| `");
        let cell = &cell[..cell.find("` |").expect("a command cell")];
        let mut parent: Vec<String> = Vec::new();
        for (i, alternative) in cell.split("\\|").enumerate() {
            let words: Vec<String> = alternative
                .split_whitespace()
                .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_owned())
                .filter(|w| !w.is_empty())
                .collect();
            let mut words = words.into_iter().peekable();
            let mut path = if i == 0 {
                assert_eq!(words.next().as_deref(), Some("robsond"), "{line}");
                Vec::new()
            } else {
                parent.clone()
            };
            while let Some(w) = words.next_if(|w| w.chars().all(|c| c.is_ascii_lowercase())) {
                path.push(w);
            }
            let mut shape = Shape::default();
            let mut after_option = false;
            for w in words {
                if w.starts_with("--") {
                    shape.options.insert(w);
                    after_option = true;
                } else if !after_option {
                    shape.arguments.insert(w);
                } else {
                    after_option = false; // the option's value
                }
            }
            if i == 0 {
                parent = path[..path.len().saturating_sub(1)].to_vec();
            }
            assert!(!path.is_empty(), "a row without a command: {line}");
            assert!(
                out.insert(path.clone(), shape).is_none(),
                "{path:?} twice in the README"
            );
        }
    }
    out
}

#[test]
fn the_readme_command_table_lists_exactly_the_commands_and_options_of_the_cli() {
    let clap = clap_commands();
    let readme = readme_commands();
    let clap_paths: BTreeSet<_> = clap.keys().collect();
    let readme_paths: BTreeSet<_> = readme.keys().collect();
    assert_eq!(
        readme_paths, clap_paths,
        "commands: README (left) vs --help (right)"
    );
    for (path, shape) in &clap {
        assert_eq!(
            &readme[path],
            shape,
            "robsond {}: README (left) vs --help (right)",
            path.join(" ")
        );
    }
}

#[tokio::test]
async fn every_help_page_shows_the_readme_options_the_environment_and_the_exit_codes() {
    for (path, shape) in readme_commands() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("-h");
        let out = robsond(&args, &[]).await;
        let (help, stderr) = texts(&out);
        assert!(out.status.success(), "robsond {args:?}: {stderr}");
        for option in &shape.options {
            assert!(
                help.contains(option.as_str()),
                "robsond {args:?} lacks {option}:\n{help}"
            );
        }
        for needle in ["DATABASE_URL", "Exit codes", "NO_COLOR"] {
            assert!(
                help.contains(needle),
                "robsond {args:?} lacks {needle}:\n{help}"
            );
        }
        // Every option and argument has a description (clap prints a bare
        // name when the doc comment is missing).
        for line in help.lines().filter(|l| l.trim_start().starts_with("--")) {
            let described = line.trim().split("  ").filter(|p| !p.is_empty()).count() > 1;
            let wrapped = line.trim_end().ends_with('>') || line.trim_end().ends_with(']');
            assert!(
                described || wrapped,
                "robsond {args:?}: undescribed {line:?}"
            );
        }
    }
}
