//! Where the PostgreSQL server programs are and which account runs them.
//!
//! The programs (`initdb`, `pg_ctl`, `postgres`) are looked up on PATH first,
//! then in the usual versioned install directories, highest version first.
//! PostgreSQL refuses to run as root, so as root the server runs as the
//! `postgres` system account. Starting and stopping the server belongs to
//! `cluster`.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, Context as _};

const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// Versioned install directories: (parent, prefix of the version directory).
/// Debian/Ubuntu, Homebrew (keg-only, so often not on PATH), RHEL/PGDG.
const INSTALL_ROOTS: [(&str, &str); 4] = [
    ("/usr/lib/postgresql", ""),
    ("/opt/homebrew/opt", "postgresql@"),
    ("/usr/local/opt", "postgresql@"),
    ("/usr", "pgsql-"),
];

const NOT_FOUND: &str = "PostgreSQL server programs (initdb, pg_ctl, postgres) were not found \
    on PATH nor in /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: `apt-get install \
    postgresql`; macOS: `brew install postgresql@16`), or set DATABASE_URL to use a database \
    you already have";

const ACCOUNT: &str = "postgres";

/// The directory holding one installation's server programs.
#[derive(Debug, Clone)]
pub struct PgBin {
    dir: PathBuf,
}

impl PgBin {
    /// Searches PATH, then the versioned install directories.
    pub fn find() -> anyhow::Result<PgBin> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let installed = INSTALL_ROOTS
            .iter()
            .flat_map(|(root, prefix)| versioned_bins(Path::new(root), prefix));
        std::env::split_paths(&path)
            .chain(installed)
            .find(|dir| has_server_programs(dir))
            .map(|dir| PgBin { dir })
            .ok_or_else(|| anyhow!(NOT_FOUND))
    }

    /// The full path of one program of this installation.
    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `postgres --version`, e.g. "postgres (PostgreSQL) 16.3"; empty when unknown.
    pub fn version(&self) -> String {
        Command::new(self.program("postgres"))
            .arg("--version")
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .unwrap_or_default()
    }
}

fn has_server_programs(dir: &Path) -> bool {
    SERVER_PROGRAMS.iter().all(|name| {
        fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// `<root>/<prefix><version>/bin` for every numeric version, highest first.
fn versioned_bins(root: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix(prefix)?;
            let key = version
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((key, entry.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, dir)| dir).collect()
}

/// The account the server programs run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAs {
    /// This process's own (unprivileged) user.
    Current,
    /// Another account, because this process runs as root.
    Account { uid: u32, gid: u32 },
}

impl RunAs {
    /// `Current`, or as root the `postgres` system account.
    pub fn detect() -> anyhow::Result<RunAs> {
        if effective_uid()? != 0 {
            return Ok(RunAs::Current);
        }
        let passwd = fs::read_to_string("/etc/passwd").context("Failed to read /etc/passwd")?;
        let (uid, gid) = account(&passwd, ACCOUNT).ok_or_else(|| {
            anyhow!(
                "robsond dev runs as root and PostgreSQL refuses to; create the unprivileged \
                 `{ACCOUNT}` account (e.g. `useradd --system {ACCOUNT}`) or run as a normal user"
            )
        })?;
        tracing::info!(
            account = ACCOUNT,
            uid,
            gid,
            "Running PostgreSQL as an unprivileged account."
        );
        Ok(RunAs::Account { uid, gid })
    }

    /// A command for `program` that runs as this account.
    pub fn command(self, program: &Path) -> Command {
        let mut command = Command::new(program);
        // Its own process group: a Ctrl-C on the terminal reaches only us,
        // and we stop the server in order instead of it dying half-way.
        command.process_group(0);
        if let RunAs::Account { uid, gid } = self {
            // std drops the supplementary groups when root changes uid.
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Gives `path` to this account (nothing to do for `Current`).
    pub fn take_ownership(self, path: &Path) -> anyhow::Result<()> {
        if let RunAs::Account { uid, gid } = self {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("Failed to give {} to `{ACCOUNT}`", path.display()))?;
        }
        Ok(())
    }

    /// Fails with a clear message when this account cannot reach `dir`
    /// because an existing parent directory is not searchable by it (missing
    /// ones will be created searchable).
    pub fn check_reachable(self, dir: &Path) -> anyhow::Result<()> {
        let RunAs::Account { uid, gid } = self else {
            return Ok(());
        };
        for parent in dir.ancestors().skip(1) {
            let Ok(meta) = fs::metadata(parent) else {
                continue;
            };
            let bit = if meta.uid() == uid {
                0o100
            } else if meta.gid() == gid {
                0o010
            } else {
                0o001
            };
            if meta.mode() & bit == 0 {
                anyhow::bail!(
                    "PostgreSQL runs as `{ACCOUNT}` (robsond dev runs as root) and cannot reach {}: \
                     {} is not searchable by it; choose another --data-dir (e.g. /tmp/robson-dev) \
                     or allow it (chmod o+x {})",
                    dir.display(),
                    parent.display(),
                    parent.display()
                );
            }
        }
        Ok(())
    }
}

/// The effective uid: the owner of /proc/self on Linux, else `id -u`.
fn effective_uid() -> anyhow::Result<u32> {
    if let Ok(meta) = fs::metadata("/proc/self") {
        return Ok(meta.uid());
    }
    let out = Command::new("id")
        .arg("-u")
        .output()
        .context("Failed to run `id -u`")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("Failed to read the output of `id -u`")
}

/// (uid, gid) of `name` in an /etc/passwd text.
fn account(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_install(dir: &Path, programs: &[&str]) {
        fs::create_dir_all(dir).expect("mkdir");
        for name in programs {
            let path = dir.join(name);
            fs::write(&path, "#!/bin/sh\n").expect("write");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }

    #[test]
    fn versioned_bins_are_numeric_versions_highest_first() {
        let root = tempfile::tempdir().expect("tempdir");
        for name in ["9.6", "10", "16", "15", "common", "16.beta"] {
            fs::create_dir_all(root.path().join(name)).expect("mkdir");
        }
        let found = versioned_bins(root.path(), "");
        let names: Vec<_> = found
            .iter()
            .filter_map(|d| d.parent()?.file_name()?.to_str())
            .collect();
        assert_eq!(names, ["16", "15", "10", "9.6"]);
        assert!(versioned_bins(&root.path().join("missing"), "").is_empty());
    }

    #[test]
    fn homebrew_style_directories_match_their_prefix_only() {
        let root = tempfile::tempdir().expect("tempdir");
        for name in [
            "postgresql@14",
            "postgresql@16",
            "postgresql",
            "python@3.12",
        ] {
            fs::create_dir_all(root.path().join(name)).expect("mkdir");
        }
        let found = versioned_bins(root.path(), "postgresql@");
        assert_eq!(
            found,
            [16, 14].map(|v| root.path().join(format!("postgresql@{v}/bin")))
        );
    }

    #[test]
    fn a_directory_counts_only_with_all_three_executable_programs() {
        let root = tempfile::tempdir().expect("tempdir");
        let full = root.path().join("full");
        let partial = root.path().join("partial");
        fake_install(&full, &SERVER_PROGRAMS);
        fake_install(&partial, &["initdb", "pg_ctl"]);
        assert!(has_server_programs(&full) && !has_server_programs(&partial));
        fs::set_permissions(full.join("postgres"), fs::Permissions::from_mode(0o644))
            .expect("chmod");
        assert!(!has_server_programs(&full));
    }

    #[test]
    fn accounts_are_read_from_passwd_lines() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      postgresql:x:7:7::/:/bin/false\n\
                      postgres:x:101:104:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(account(passwd, "postgres"), Some((101, 104)));
        assert_eq!(account(passwd, "nobody"), None);
    }

    #[test]
    fn the_not_found_message_names_the_packages_to_install() {
        assert!(NOT_FOUND.contains("apt-get install postgresql"));
        assert!(NOT_FOUND.contains("brew install postgresql@16"));
    }
}
