//! A smoke run of `robsond bench` (about 20k events): it must complete and
//! end with the projections equal to a clean rebuild. Timing never decides
//! anything here; the figures are printed for the log only.

use std::process::Command;

#[test]
#[ignore = "needs PostgreSQL binaries"]
fn a_small_bench_run_ends_with_projections_equal_to_a_clean_rebuild() {
    let work = tempfile::Builder::new()
        .prefix("robson-bench-smoke")
        .tempdir_in("/tmp")
        .expect("a work directory");
    // As root the server runs as `postgres`, which must be able to reach it.
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("open the work directory");
    // The cluster's directory must not exist yet: bench creates it.
    let dir = work.path().join("cluster");
    let out = Command::new(env!("CARGO_BIN_EXE_robsond"))
        .args(["bench", "--events", "20000", "--work-dir"])
        .arg(&dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run robsond bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(out.status.success(), "robsond bench failed: {stderr}");
    assert!(
        stdout.contains("| projections equal a clean rebuild (verify) | true |"),
        "verify did not confirm the projections: {stdout}"
    );
    assert!(!dir.exists(), "bench left its cluster behind");
}
