//! `docs/ABI.md` is generated from the op table (`src/optable.rs`); this test keeps them equal.

#[test]
fn abi_md_matches_the_op_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ABI.md");
    let want = opsplit::optable::render_abi_markdown();
    if std::env::var_os("OPSPLIT_BLESS").is_some() {
        std::fs::write(path, &want).expect("write docs/ABI.md");
        return;
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/ABI.md differs from src/optable.rs; regenerate it with \
         `OPSPLIT_BLESS=1 cargo test --test analysis_abi` and review the diff"
    );
}
