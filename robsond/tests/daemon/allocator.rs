//! The daemon runs on jemalloc with the settings of `.cargo/config.toml`
//! built in (two arenas, freed pages returned after a second): without
//! them a catch-up's peak RSS rose by up to 59 MiB (docs/performance.md,
//! "jemalloc"). jemalloc prints the options it runs with when asked
//! through its environment variable. Needs no database.

use std::process::Command;

use crate::support::ROBSOND;

#[test]
fn robsond_allocates_with_jemalloc_and_the_built_in_settings() {
    let out = Command::new(ROBSOND)
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .expect("run robsond --version");
    assert!(out.status.success(), "{out:?}");
    let stats = String::from_utf8_lossy(&out.stderr);
    for option in [
        "opt.narenas: 2",
        "opt.dirty_decay_ms: 1000",
        "opt.muzzy_decay_ms: 0",
    ] {
        assert!(
            stats
                .lines()
                .any(|l| l.trim() == option || l.trim().starts_with(&format!("{option} ("))),
            "{option} missing from jemalloc's statistics:\n{stats}"
        );
    }
}
