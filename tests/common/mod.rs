//! Shared helpers for integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Root of the committed fixture corpus.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every committed fixture object (`fixtures/**/*.o`: main builds, variants and per-op reference
/// builds), sorted by path.
pub fn fixture_objects() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("fixtures/ is readable") {
            let p = e.expect("readable fixtures/ entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "o") {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(&fixtures_dir(), &mut v);
    v.sort();
    v
}

/// A fixture's path relative to `fixtures/`, for messages.
pub fn fixture_name(p: &Path) -> String {
    p.strip_prefix(fixtures_dir())
        .unwrap_or(p)
        .display()
        .to_string()
}

/// Why kernel tests cannot run here, or `None` if they can.
///
/// Kernel tests need root (CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN for cgroups) and vmlinux BTF.
pub fn kernel_unavailable_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc_geteuid() };
    if euid != 0 {
        return Some(format!(
            "not running as root (euid {euid}); bpf() needs CAP_BPF/CAP_SYS_ADMIN"
        ));
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("/sys/kernel/btf/vmlinux is missing: kernel without BTF".into());
    }
    None
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Gate for a kernel test: returns `true` if the test should run. If it cannot run, it prints the
/// reason and returns `false`, except under `OPSPLIT_REQUIRE_KERNEL=1` (CI), where it panics so that
/// a kernel test can never silently skip in CI.
pub fn kernel_test_gate(test: &str) -> bool {
    match kernel_unavailable_reason() {
        None => true,
        Some(why) => {
            if std::env::var("OPSPLIT_REQUIRE_KERNEL").is_ok_and(|v| v == "1") {
                panic!(
                    "{test}: kernel test required (OPSPLIT_REQUIRE_KERNEL=1) but cannot run: {why}"
                );
            }
            eprintln!("SKIPPED kernel test {test}: {why}");
            false
        }
    }
}
