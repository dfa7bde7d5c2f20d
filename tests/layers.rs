//! The house's one-way flow: src/lib.rs lists its modules in dependency
//! order, and each module may use only modules listed before it (`stats`
//! knows no sockets, transports know no CSV). This test reads every source
//! file under src/ and fails on any `crate::<module>` that names a module
//! listed at or after the file's own.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `pub mod` names of src/lib.rs, in order.
fn layers() -> Vec<String> {
    std::fs::read_to_string(root().join("src/lib.rs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect()
}

/// The Rust files of a top-level module: src/NAME.rs and everything under src/NAME/.
fn files_of(name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let single = root().join("src").join(format!("{name}.rs"));
    if single.exists() {
        out.push(single);
    }
    let mut todo = vec![root().join("src").join(name)];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// Every top-level module a file names as `crate::m`, including inside
/// `use crate::{a, b::c}` groups.
fn named(text: &str, modules: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let heads: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end].split(',').map(str::trim).collect()
        } else {
            vec![rest]
        };
        for h in heads {
            let m: String = h
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

#[test]
fn each_module_uses_only_modules_listed_before_it() {
    let order = layers();
    assert!(order.len() >= 10, "lib.rs lists {order:?}");
    let mut wrong = Vec::new();
    for (i, m) in order.iter().enumerate() {
        for f in files_of(m) {
            let text = std::fs::read_to_string(&f).unwrap();
            for used in named(&text, &order) {
                let j = order.iter().position(|x| *x == used).unwrap();
                if j > i {
                    wrong.push(format!(
                        "{} (module {m}) uses crate::{used}, listed after it",
                        f.strip_prefix(root()).unwrap().display()
                    ));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "arrows back up:\n{}", wrong.join("\n"));
}

/// The reader of this test reads what it claims to read.
#[test]
fn the_layer_reader_sees_grouped_and_plain_uses() {
    let mods: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let mut got = named("use crate::{a::X, b};\nlet _ = crate::c::f();", &mods);
    got.sort();
    assert_eq!(got, ["a", "b", "c"]);
}
