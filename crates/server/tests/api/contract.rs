//! The project's copy of the external contract is the shared one, to the letter.

use std::path::Path;

#[test]
fn docs_contract_is_the_shared_contract() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = root.join("../shared/CONTRACT.md");
    if !shared.exists() {
        eprintln!(
            "docs_contract_is_the_shared_contract: {} is not here; nothing to compare",
            shared.display()
        );
        return;
    }
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(
        read(&root.join("docs/CONTRACT.md")) == read(&shared),
        "docs/CONTRACT.md differs from {}: copy it over",
        shared.display()
    );
}
