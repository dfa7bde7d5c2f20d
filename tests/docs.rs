//! What the documentation states that the code decides. Each test fails
//! when the text and the code part: the `cargo bench` profiles, the tests
//! the guarantees name, the links, and every sockbench command line shown.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Parser;
use sockbench::cli::Cli;
use sockbench::plan::BenchProfile;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown a reader meets: README.md, docs/, scripts/ and results/ READMEs.
fn pages() -> Vec<PathBuf> {
    let mut v = vec![
        root().join("README.md"),
        root().join("scripts/README.md"),
        root().join("results/README.md"),
    ];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            v.push(p);
        }
    }
    v
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_docs_state_the_bench_profiles_as_the_code_has_them() {
    let text = read(&root().join("docs/cargo-bench.md"));
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for p in [BenchProfile::Full, BenchProfile::Quick] {
        let said = p.describe();
        assert!(
            flat.contains(&said),
            "docs/cargo-bench.md should say `{said}` for {p:?}"
        );
    }
}

/// The names of the `#[test]` functions in the Rust files under `dir`.
fn test_functions(dir: &Path, into: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            test_functions(&p, into);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = read(&p);
            let mut lines = text.lines().map(str::trim_start);
            while let Some(line) = lines.next() {
                if line != "#[test]" {
                    continue;
                }
                let Some(rest) = lines.find_map(|l| l.strip_prefix("fn ")) else {
                    break;
                };
                into.insert(
                    rest.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect(),
                );
            }
        }
    }
}

/// Every `snake_case_name` in backquotes in docs/guarantees.md is a test:
/// a `#[test]` function in tests/ or in a unit-test module under src/ (a
/// name ending in `…` is a prefix of one).
#[test]
fn every_test_a_guarantee_names_exists() {
    let mut defined = BTreeSet::new();
    test_functions(&root().join("tests"), &mut defined);
    test_functions(&root().join("src"), &mut defined);
    let text = read(&root().join("docs/guarantees.md"));
    let named: Vec<&str> = text
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.contains('_')
                && s.trim_end_matches('…')
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    assert!(named.len() >= 10, "found only {named:?}");
    for n in named {
        let found = match n.strip_suffix('…') {
            Some(prefix) => defined.iter().any(|d| d.starts_with(prefix)),
            None => defined.contains(n),
        };
        assert!(
            found,
            "docs/guarantees.md names `{n}`, which no test defines"
        );
    }
}

/// Whether a clean clone holds `path` (a file, or a directory of files):
/// what git tracks, not what this working tree happens to have made.
fn in_clean_checkout(path: &str) -> bool {
    let listed = std::process::Command::new("git")
        .args(["ls-files", "-z", "--", path])
        .current_dir(root())
        .output();
    match listed {
        Ok(o) if o.status.success() && root().join(".git").exists() => !o.stdout.is_empty(),
        // Not a git checkout (a source tarball): what is on disk is all there is.
        _ => root().join(path).exists(),
    }
}

/// Every source path a page names in backquotes (`src/…`, `tests/…`,
/// `scripts/…`, `benches/…`) is in a clean checkout (or is a place the
/// tools make, which .gitignore names), and every module of src/lib.rs is
/// named in docs/architecture.md: the map holds to the house.
#[test]
fn the_architecture_names_what_exists() {
    // Places the tools make at run time (scripts/.venv): .gitignore names them.
    let generated: Vec<String> = read(&root().join(".gitignore"))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.contains('*'))
        .map(|l| l.trim_matches('/').to_string())
        .collect();
    for page in pages() {
        let text = read(&page);
        for p in text.split('`').skip(1).step_by(2) {
            let path = p.split_whitespace().next().unwrap_or("");
            let named = ["src/", "tests/", "scripts/", "benches/"]
                .iter()
                .any(|d| path.starts_with(d))
                && !path.contains(['*', '<', '{', '$']);
            let path = path.trim_end_matches(['.', ',', ':']);
            if named && !generated.iter().any(|g| path.starts_with(g.as_str())) {
                assert!(
                    in_clean_checkout(path),
                    "{} names `{path}`, which a clean checkout does not have",
                    page.display()
                );
            }
        }
    }
    let arch = read(&root().join("docs/architecture.md"));
    for line in read(&root().join("src/lib.rs")).lines() {
        if let Some(m) = line.trim().strip_prefix("pub mod ") {
            let m = m.trim_end_matches(';');
            assert!(
                arch.contains(&format!("src/{m}.rs")) || arch.contains(&format!("src/{m}/")),
                "docs/architecture.md does not name module {m}"
            );
        }
    }
}

/// Every relative link `[..](path)` in the pages points at a file or
/// directory that exists.
#[test]
fn every_relative_link_resolves() {
    for page in pages() {
        let text = read(&page);
        for piece in text.split("](").skip(1) {
            let target = piece.split(')').next().unwrap();
            let target = target.split('#').next().unwrap();
            if target.is_empty() || target.contains("://") {
                continue;
            }
            let p = page.parent().unwrap().join(target);
            assert!(
                p.exists(),
                "{}: link to {target}, which does not exist",
                page.display()
            );
        }
    }
}

/// Every sockbench command line in a code block of the pages parses: flags
/// and values that exist.
#[test]
fn every_command_shown_parses() {
    let mut seen = 0;
    for page in pages() {
        let text = read(&page);
        let mut in_code = false;
        let mut lines = Vec::new();
        let mut held = String::new();
        for line in text.lines() {
            if line.starts_with("```") {
                in_code = !in_code;
            } else if in_code {
                // A trailing backslash continues the command.
                match line.strip_suffix('\\') {
                    Some(part) => held.push_str(part),
                    None => lines.push(std::mem::take(&mut held) + line),
                }
            }
        }
        for line in lines {
            let mut cmd = line.split(" #").next().unwrap().trim().to_string();
            // $(mktemp -d) and other shell substitutions stand for a path.
            while let Some(i) = cmd.find("$(") {
                let j = cmd[i..].find(')').map_or(cmd.len(), |j| i + j + 1);
                cmd.replace_range(i..j, "/tmp/x");
            }
            let args = if let Some(r) = cmd.strip_prefix("cargo run --release -- ") {
                r
            } else if let Some(r) = cmd.strip_prefix("sockbench ") {
                r
            } else if let Some(r) = cmd.strip_prefix("scripts/record.sh ") {
                // [--side SIDE] LABEL ARGS...
                let r = r
                    .strip_prefix("--side ")
                    .and_then(|r| r.split_once(' '))
                    .map_or(r, |(_side, rest)| rest);
                r.split_once(' ').map_or("", |(_label, rest)| rest)
            } else {
                continue;
            };
            let argv = std::iter::once("sockbench").chain(args.split_whitespace());
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("{}: `{cmd}` does not parse:\n{e}", page.display());
            }
            seen += 1;
        }
    }
    assert!(seen >= 5, "only {seen} commands found");
}

/// An output block a page shows right after naming a recorded run
/// (`[results/X](…/README.md)` in the two lines before it) is that run's
/// output, verbatim: a sample that no run printed, or a run re-recorded
/// without the page, fails.
#[test]
fn every_output_shown_is_in_the_run_it_cites() {
    let mut checked = 0;
    for page in pages() {
        let text = read(&page);
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if !lines[i].starts_with("```") {
                i += 1;
                continue;
            }
            let end = (i + 1..lines.len())
                .find(|&j| lines[j] == "```")
                .unwrap_or_else(|| panic!("{}: a block never closes", page.display()));
            let before = lines[i.saturating_sub(3)..i].join(" ");
            let cited = before.split("](").skip(1).find_map(|rest| {
                let link = rest.split(')').next()?;
                let dir = link.strip_suffix("/README.md")?;
                let at = dir.find("results/")?;
                Some(root().join(&dir[at..]).join("README.md"))
            });
            if let (Some(run), true) = (cited, lines[i] == "```") {
                let block = lines[i + 1..end].join("\n");
                assert!(
                    read(&run).contains(&block),
                    "{}: the output block at line {} is not in {}",
                    page.display(),
                    i + 1,
                    run.display()
                );
                checked += 1;
            }
            i = end + 1;
        }
    }
    assert!(checked > 0, "no page shows a recorded run's output");
}

/// Every example `sockbench --help` shows parses as the real command line.
#[test]
fn every_example_in_the_help_parses() {
    let mut seen = 0;
    for line in sockbench::cli::EXAMPLES.lines() {
        let Some(cmd) = line.trim().strip_prefix("sockbench ") else {
            continue;
        };
        let cmd = cmd.split("  ").next().unwrap();
        let argv = std::iter::once("sockbench").chain(cmd.split_whitespace());
        if let Err(e) = Cli::try_parse_from(argv) {
            panic!("--help shows `sockbench {cmd}`, which does not parse: {e}");
        }
        seen += 1;
    }
    assert!(seen >= 5, "{seen} examples");
}
