//! The committed kernel layout (used when `/sys/kernel/btf/vmlinux` is missing) is this kernel's:
//! every modelled struct size and field offset matches vmlinux BTF.

use opsplit::btf::Btf;
use opsplit::runtime::kernel::{COMMITTED, KernelLayout, LayoutSource};

#[test]
fn committed_layout_matches_vmlinux_btf() {
    let Ok(bytes) = std::fs::read("/sys/kernel/btf/vmlinux") else {
        eprintln!("skipped: no /sys/kernel/btf/vmlinux");
        return;
    };
    let live = KernelLayout::from_btf(Btf::parse(&bytes).unwrap()).unwrap();
    assert_eq!(live.source, LayoutSource::Vmlinux);
    let committed = KernelLayout::committed();
    let mut diffs = Vec::new();
    for (s, _, fields) in COMMITTED {
        if live.size(s) != committed.size(s) {
            diffs.push(format!(
                "{s}: size {} (committed {})",
                live.size(s),
                committed.size(s)
            ));
        }
        for (f, ..) in fields.iter() {
            let (l, c) = (live.field(s, f), committed.field(s, f));
            if l != c {
                diffs.push(format!("{s}.{f}: {l:?} (committed {c:?})"));
            }
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
