//! Every committed fixture loads in the running kernel (verifier included), with libbpf-rs.
//!
//! This is the ground truth that the corpus is made of programs the kernel accepts: later stages
//! compare their outputs against these loads.

mod common;

use common::{fixture_name, fixture_objects, kernel_test_gate};

/// Fixtures libbpf ≥ 1.0 cannot open as they are (legacy `maps` sections). Each must really fail
/// as is (so this list cannot hide a fixture that would load), and must load once opsplit's object
/// codec has converted it: the converted object is its kernel baseline.
const LIBBPF_REFUSES: &[&str] = &["legacy_maps.o"];

#[test]
fn every_fixture_loads_in_the_kernel() {
    if !kernel_test_gate("every_fixture_loads_in_the_kernel") {
        return;
    }
    let fixtures = fixture_objects();
    assert!(
        fixtures.len() >= 15,
        "expected the fixture corpus (≥ 15 objects), found {}",
        fixtures.len()
    );
    let mut failures = Vec::new();
    let mut loaded = 0;
    for path in &fixtures {
        let name = fixture_name(path);
        let bytes = std::fs::read(path).expect("fixture is readable");
        let refused_by_design = LIBBPF_REFUSES.contains(&name.as_str());
        let result = opsplit::load::load_object(&bytes, &name);
        let result = match (refused_by_design, result) {
            (true, Ok(_)) => {
                failures.push(format!(
                    "{name}: listed as refused by libbpf, but it loaded"
                ));
                continue;
            }
            (true, Err(_)) => {
                let converted = opsplit::obj::Object::parse(&bytes)
                    .and_then(|o| o.write())
                    .expect("the codec converts legacy maps");
                opsplit::load::load_object(&converted, &format!("{name} (converted)"))
            }
            (false, r) => r,
        };
        match result {
            Ok(report) => {
                if report.programs.is_empty() {
                    failures.push(format!("{name}: loaded no program"));
                }
                for p in &report.programs {
                    if p.verified_insns == 0 {
                        failures.push(format!("{name}/{}: verifier processed nothing", p.name));
                    }
                }
                loaded += 1;
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures that did not load:\n{}",
        failures.join("\n\n")
    );
    assert_eq!(loaded, fixtures.len());
    eprintln!("{loaded} fixtures loaded and released");
}
