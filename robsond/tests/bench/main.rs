//! A smoke run of `robsond bench --profile all` (8,000 events per profile):
//! it must complete and end, for every profile, with the projections equal
//! to a clean rebuild. Timing never decides anything here; the figures are
//! printed for the log only.

use std::process::Command;

#[test]
#[ignore = "needs PostgreSQL binaries"]
fn a_small_bench_run_of_every_profile_ends_with_projections_equal_to_a_clean_rebuild() {
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
        .args([
            "bench",
            "--events",
            "8000",
            "--profile",
            "all",
            "--work-dir",
        ])
        .arg(&dir)
        .env_remove("DATABASE_URL")
        // Fewer latency probes than the default 500: no timing is judged
        // here, and each probe under load grows the log by 2,000 events/s.
        .env("ROBSON_BENCH_PROBES", "100")
        .output()
        .expect("run robsond bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(out.status.success(), "robsond bench failed: {stderr}");
    // One table per profile, each ending with verify's answer.
    let tables: Vec<&str> = stdout.split("robson bench, profile ").skip(1).collect();
    let names: Vec<&str> = tables
        .iter()
        .map(|t| t.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["mixed", "short-streams", "hot-streams", "wide-tenants"],
        "{stdout}"
    );
    for table in tables {
        assert!(
            table.contains("| projections equal a clean rebuild (verify) | true |"),
            "verify did not confirm the projections: {table}"
        );
    }
    assert!(!dir.exists(), "bench left its cluster behind");
}
