//! Records the git revision and rustc version in the binary, for the
//! environment fingerprint of every result.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let rev = output("git", &["rev-parse", "--short=12", "HEAD"]).map_or_else(
        || "unknown".to_string(),
        |r| match output("git", &["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if !s.is_empty() => format!("{r}-dirty"),
            _ => r,
        },
    );
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc = output(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SOCKBENCH_GIT_REVISION={rev}");
    println!("cargo:rustc-env=SOCKBENCH_RUSTC_VERSION={rustc}");
    // Rerun when the revision or the index changes. In a worktree `.git`
    // is a file, so ask git where its files are; with no rerun-if-changed
    // line at all, cargo would rerun this (and rebuild) whenever any file
    // in the package changed, such as a result written under results/.
    let git_dir = output("git", &["rev-parse", "--git-dir"]);
    let common = output("git", &["rev-parse", "--git-common-dir"]);
    let mut watched = 0;
    for (dir, name) in [
        (&git_dir, "HEAD"),
        (&git_dir, "index"),
        (&common, "refs/heads"),
        (&common, "packed-refs"),
    ] {
        if let Some(d) = dir {
            let p = std::path::Path::new(d).join(name);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
                watched += 1;
            }
        }
    }
    if watched == 0 {
        // Not a git checkout: the revision cannot change; rerun for this file only.
        println!("cargo:rerun-if-changed=build.rs");
    }
}
