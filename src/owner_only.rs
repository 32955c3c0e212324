//! Owner-only files and directories for everything resynth derives from
//! real rows: the audit log, model records, reports, the privacy ledger,
//! lineage events, the engine lock and inbox, and audit binders.
//!
//! These hold PHI-derived content (fitted marginals, real-data scores,
//! source coordinates), so on Unix every directory resynth creates for them
//! is `0700` and every file it writes is `0600`, whatever the umask allows.
//! A file that already exists with wider bits (written by an older version,
//! or by hand) is narrowed when resynth opens or rewrites it; atomic
//! rewrites go through a fresh `0600` temporary file, so a rename never
//! carries old permissions over. Directories that already exist are left
//! alone: the audit directory may be one an operator made on purpose.
//! Synthetic output (`resynth sample --out`, the synthetic topics) does not
//! use this module: it is meant to leave the controlled environment.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("reports/r1.json");
//! resynth::owner_only::create_dir_all(path.parent().unwrap()).unwrap();
//! resynth::owner_only::write_atomic(&path, b"{}").unwrap();
//! # #[cfg(unix)] {
//! use std::os::unix::fs::PermissionsExt;
//! assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
//! # }
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Mode bits of every PHI-derived file resynth writes.
pub const FILE_MODE: u32 = 0o600;
/// Mode bits of every directory resynth creates for PHI-derived files.
pub const DIR_MODE: u32 = 0o700;

/// Creates `path` and any missing parents, each new one owner-only.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(path)
}

/// Opens `path` with the options `configure` sets (`create` included, if
/// wanted); a file it creates is `0600`, one that existed is narrowed to it.
pub fn open(path: &Path, configure: impl FnOnce(&mut OpenOptions)) -> io::Result<File> {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    configure(&mut options);
    let file = options.open(path)?;
    restrict(&file)?;
    Ok(file)
}

/// Opens `path` for appending, creating it owner-only.
pub fn open_append(path: &Path) -> io::Result<File> {
    open(path, |o| {
        o.create(true).append(true);
    })
}

/// Writes `bytes` to `path` (replacing it), owner-only.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = open(path, |o| {
        o.write(true).create(true).truncate(true);
    })?;
    file.write_all(bytes)
}

/// Writes atomically: an owner-only temporary file in the same directory,
/// then rename, so a crash never leaves a half-written file and the result
/// is `0600` even when it replaces a wider one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(unix)]
fn restrict(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o777 != FILE_MODE {
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_file: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
pub(crate) mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// The permission bits of `path` (files and directories).
    pub(crate) fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_directories_and_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        super::create_dir_all(&nested).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        let file = nested.join("f.json");
        super::write_atomic(&file, b"x").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert!(!nested.join("f.tmp").exists(), "no temporary left behind");
    }

    #[test]
    fn rewriting_a_wider_file_narrows_it() {
        let dir = tempfile::tempdir().unwrap();
        for write in [super::write_atomic, super::write] {
            let file = dir.path().join("deployed");
            std::fs::write(&file, "1").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            write(&file, b"2").unwrap();
            assert_eq!(mode(&file), 0o600);
            assert_eq!(std::fs::read_to_string(&file).unwrap(), "2");
            std::fs::remove_file(&file).unwrap();
        }
        let log = dir.path().join("log.jsonl");
        std::fs::write(&log, "old\n").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
        std::io::Write::write_all(&mut super::open_append(&log).unwrap(), b"new\n").unwrap();
        assert_eq!(mode(&log), 0o600);
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "old\nnew\n");
    }

    #[test]
    fn a_stale_wide_temporary_does_not_leak_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v1.json");
        std::fs::write(dir.path().join("v1.tmp"), "stale").unwrap();
        std::fs::set_permissions(
            dir.path().join("v1.tmp"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        super::write_atomic(&file, b"{}").unwrap();
        assert_eq!(mode(&file), 0o600);
    }
}
