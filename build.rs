//! Records the git commit the engine was built from, for the methodology
//! specification of the audit binder (`RESYNTH_BUILD_COMMIT`, "unknown"
//! outside a git checkout). A source tarball without `.git` still builds.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Cargo reruns a build script on every build when a watched path does
/// not exist, so only existing paths are watched.
fn watch(path: &str) {
    if std::path::Path::new(path).exists() {
        println!("cargo:rerun-if-changed={path}");
    }
}

fn main() {
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RESYNTH_BUILD_COMMIT={commit}");
    // Rebuild when HEAD moves: the HEAD file, and the branch it points at.
    for path in [
        Some("HEAD".to_string()),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(file) = git(&["rev-parse", "--git-path", &path]) {
            watch(&file);
        }
    }
    if let Some(packed) = git(&["rev-parse", "--git-path", "packed-refs"]) {
        watch(&packed);
    }
    println!("cargo:rerun-if-changed=build.rs");
}
