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
    for p in [".git/HEAD", ".git/index", ".git/refs/heads"] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
