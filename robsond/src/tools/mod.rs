//! The tools shipped with the daemon, apart from its core: `robsond dev`
//! (a private PostgreSQL, a live flow and the daemon in one command),
//! `robsond bench` (the benchmarks of performance.md) and `robsond
//! generate` (realistic trading flows).
//!
//! They use the core (`app`, `daemon`, `replay`, `config`, …); the core
//! never uses them. Only the command line (`cli`, `lib`), `commands` and
//! the tools themselves may name `crate::tools` (a test below holds that).

pub mod bench;
pub mod dev;
pub mod generate;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Files of `src/` (relative paths) whose text matches `needle`.
    fn files_naming(dir: &Path, root: &Path, needle: &str, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                files_naming(&path, root, needle, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a source file");
                if text.contains(needle) {
                    out.push(path.strip_prefix(root).expect("under src/").to_path_buf());
                }
            }
        }
    }

    #[test]
    fn no_core_module_uses_the_tools() {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut naming = Vec::new();
        files_naming(&src, &src, "crate::tools", &mut naming);
        let allowed = |p: &Path| {
            p.starts_with("tools") || p.starts_with("commands") || p == Path::new("cli.rs")
        };
        let core: Vec<&PathBuf> = naming.iter().filter(|p| !allowed(p)).collect();
        assert!(
            core.is_empty(),
            "core modules naming crate::tools: {core:?}"
        );
        // The rule can fail: the command line does name the tools.
        assert!(naming.contains(&PathBuf::from("cli.rs")), "{naming:?}");
    }
}
