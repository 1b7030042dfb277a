//! The private PostgreSQL of `robsond dev`: a data directory made by `initdb`
//! on first use and reused afterwards, a server started with `pg_ctl -w` on a
//! free loopback port, and stopped again with `pg_ctl -m fast stop`.
//!
//! The port changes at every start, so it is written to `robson-dev.conf`,
//! which `postgresql.conf` includes. A server already running in the data
//! directory is reused and left running. Finding the programs and choosing
//! the account that runs them belongs to `binaries`.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{anyhow, Context as _};
use sqlx::Connection as _;

use super::binaries::{PgBin, RunAs};

/// The superuser `initdb` creates, and the database the daemon uses.
pub const USER: &str = "robson";
pub const DATABASE: &str = "robson";

const SETTINGS_FILE: &str = "robson-dev.conf";
const LOG_FILE: &str = "robson-dev.log";
/// Socket paths longer than this do not fit in `sockaddr_un` on every system
/// (Linux 108 bytes, macOS 104); the server then listens on TCP only.
const MAX_SOCKET_PATH: usize = 100;

/// A PostgreSQL data directory and the programs and account that serve it.
#[derive(Debug, Clone)]
pub struct Cluster {
    bin: PgBin,
    run_as: RunAs,
    dir: PathBuf,
}

impl Cluster {
    /// Opens `dir`, running `initdb` when it is missing or empty. Returns the
    /// cluster and whether it was created now.
    pub fn open(bin: PgBin, run_as: RunAs, dir: &Path) -> anyhow::Result<(Cluster, bool)> {
        let absolute = std::path::absolute(dir)
            .with_context(|| format!("Failed to resolve {}", dir.display()))?;
        run_as.check_reachable(&absolute)?;
        fs::create_dir_all(dir).with_context(|| format!("Failed to create {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("Failed to resolve {}", dir.display()))?;
        let cluster = Cluster { bin, run_as, dir };
        if cluster.dir.join("PG_VERSION").is_file() {
            tracing::info!(data_dir = %cluster.dir.display(), "Reusing the data directory.");
            return Ok((cluster, false));
        }
        let empty = fs::read_dir(&cluster.dir)
            .with_context(|| format!("Failed to read {}", cluster.dir.display()))?
            .next()
            .is_none();
        if !empty {
            anyhow::bail!(
                "{} is neither empty nor a PostgreSQL data directory (no PG_VERSION); \
                 choose another --data-dir",
                cluster.dir.display()
            );
        }
        cluster.initdb()?;
        Ok((cluster, true))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn initdb(&self) -> anyhow::Result<()> {
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("Failed to restrict {}", self.dir.display()))?;
        self.run_as.take_ownership(&self.dir)?;
        tracing::info!(data_dir = %self.dir.display(), "Creating the data directory with initdb.");
        let mut initdb = self.command("initdb");
        initdb.arg("-D").arg(&self.dir).args([
            "-U",
            USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        checked(initdb, "initdb")?;
        let include = "\n# Added by `robsond dev`: port and addresses of each start.\n\
                       include_if_exists = 'robson-dev.conf'\n";
        let conf = self.dir.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).context("Failed to read postgresql.conf")?;
        text.push_str(include);
        fs::write(&conf, text).context("Failed to write postgresql.conf")
    }

    /// The server of this data directory: started now, or already running.
    pub fn start(self) -> anyhow::Result<Server> {
        if let Some(port) = self.running_port()? {
            tracing::warn!(data_dir = %self.dir.display(), port, "A server is already running in the data directory; reusing it.");
            return Ok(Server {
                cluster: self,
                port,
                owned: false,
                stopped: false,
            });
        }
        let port = free_port()?;
        let settings = self.dir.join(SETTINGS_FILE);
        fs::write(&settings, settings_text(&self.dir, port))
            .with_context(|| format!("Failed to write {}", settings.display()))?;
        self.run_as.take_ownership(&settings)?;
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.dir)
            .arg("-l")
            .arg(self.dir.join(LOG_FILE));
        pg_ctl.args(["-w", "-t", "60", "start"]);
        if let Err(err) = checked(pg_ctl, "pg_ctl start") {
            return Err(err.context(format!("server log:\n{}", self.log_tail())));
        }
        tracing::info!(data_dir = %self.dir.display(), port, "PostgreSQL started.");
        Ok(Server {
            cluster: self,
            port,
            owned: true,
            stopped: false,
        })
    }

    /// The port of a server running in this directory (`pg_ctl status`).
    fn running_port(&self) -> anyhow::Result<Option<u16>> {
        let mut status = self.command("pg_ctl");
        status.arg("status").arg("-D").arg(&self.dir);
        let out = status.output().context("Failed to run pg_ctl status")?;
        if !out.status.success() {
            return Ok(None);
        }
        // postmaster.pid: pid, data directory, start time, port, …
        let pid_file = fs::read_to_string(self.dir.join("postmaster.pid"))
            .context("Failed to read postmaster.pid of the running server")?;
        let port = pid_file.lines().nth(3).and_then(|l| l.trim().parse().ok());
        port.map(Some)
            .ok_or_else(|| anyhow!("postmaster.pid of the running server names no port"))
    }

    fn command(&self, program: &str) -> Command {
        let mut command = self.run_as.command(&self.bin.program(program));
        // The server account may not be able to read our working directory.
        command.current_dir(&self.dir);
        command
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join(LOG_FILE)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A running server; stop it with [`Server::stop`]. Dropping a server this
/// process started without stopping it stops it immediately.
#[derive(Debug)]
pub struct Server {
    cluster: Cluster,
    pub port: u16,
    /// Started by this process (and so to be stopped by it).
    pub owned: bool,
    stopped: bool,
}

impl Server {
    /// A URL for `database` as the `robson` superuser over loopback TCP.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates the `robson` database unless it exists.
    pub async fn ensure_database(&self) -> anyhow::Result<()> {
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .context("Failed to connect to the private PostgreSQL")?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(DATABASE)
                .fetch_one(&mut conn)
                .await
                .context("Failed to look up the robson database")?;
        if !exists {
            sqlx::query(r#"CREATE DATABASE "robson""#)
                .execute(&mut conn)
                .await
                .context("Failed to create the robson database")?;
            tracing::info!(database = DATABASE, "Created the database.");
        }
        conn.close().await.context("Failed to disconnect")
    }

    /// Stops the server if this process started it (fast mode: sessions are
    /// ended, then a clean shutdown); a reused server is left running.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stopped = true;
        if !self.owned {
            return Ok(());
        }
        let mut pg_ctl = self.cluster.command("pg_ctl");
        pg_ctl.arg("-D").arg(&self.cluster.dir);
        pg_ctl.args(["-m", "fast", "-w", "-t", "60", "stop"]);
        checked(pg_ctl, "pg_ctl stop")?;
        tracing::info!(data_dir = %self.cluster.dir.display(), "PostgreSQL stopped.");
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.owned && !self.stopped {
            // Last resort (an early error or a panic): nothing we started may outlive us.
            let mut pg_ctl = self.cluster.command("pg_ctl");
            pg_ctl.arg("-D").arg(&self.cluster.dir);
            pg_ctl.args(["-m", "immediate", "-w", "stop"]);
            let _ = pg_ctl.output();
        }
    }
}

/// Runs `command`; on failure, an error carrying its output.
fn checked(mut command: Command, what: &str) -> anyhow::Result<Output> {
    let out = command
        .output()
        .with_context(|| format!("Failed to run {what}"))?;
    if out.status.success() {
        return Ok(out);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    Err(anyhow!(
        "{what} failed ({}): {}{}",
        out.status,
        stdout.trim(),
        stderr.trim()
    ))
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("Failed to find a free loopback port")?;
    Ok(listener
        .local_addr()
        .context("Failed to read the bound port")?
        .port())
}

/// The per-start settings: port, loopback TCP, and the socket inside the
/// data directory when its path fits.
fn settings_text(dir: &Path, port: u16) -> String {
    let dir_text = dir.to_string_lossy();
    let socket_path_len = dir_text.len() + format!("/.s.PGSQL.{port}").len();
    let socket_dir = if socket_path_len <= MAX_SOCKET_PATH {
        quote(&dir_text)
    } else {
        "''".to_owned()
    };
    format!(
        "# Written by `robsond dev` at each start; changes here are overwritten.\n\
         port = {port}\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = {socket_dir}\n"
    )
}

/// A postgresql.conf string literal.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_put_the_socket_in_the_data_directory_when_it_fits() {
        let text = settings_text(Path::new("/tmp/robson dev's"), 54321);
        assert!(text.contains("port = 54321\n"), "{text}");
        assert!(text.contains("listen_addresses = '127.0.0.1'\n"), "{text}");
        assert!(
            text.contains("unix_socket_directories = '/tmp/robson dev''s'\n"),
            "{text}"
        );
    }

    #[test]
    fn settings_drop_the_socket_when_its_path_would_be_too_long() {
        let long = format!("/tmp/{}", "d".repeat(90));
        let text = settings_text(Path::new(&long), 5432);
        assert!(text.contains("unix_socket_directories = ''\n"), "{text}");
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote(r"a\b'c"), r"'a\\b''c'");
    }

    #[test]
    fn free_ports_are_loopback_ports_that_can_be_bound() {
        let port = free_port().expect("port");
        assert!(port > 0);
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}
