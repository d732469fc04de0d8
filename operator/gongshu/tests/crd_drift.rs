//! The committed CRDs in `crds/` must be exactly what the Rust types render (STYLE.md: CRDs
//! generated from the types, committed, and checked for drift).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, fs, path::PathBuf};

use gongshu::crd;

const FIX: &str =
    "run `cargo xtask crd` (it calls `gongshu crd --out-dir crds`) and commit the result";

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds")
}

/// The first line where `a` and `b` differ, 1-based, with both versions of it.
fn first_difference(committed: &str, rendered: &str) -> String {
    let mut committed_lines = committed.lines();
    let mut rendered_lines = rendered.lines();
    for number in 1.. {
        match (committed_lines.next(), rendered_lines.next()) {
            (Some(c), Some(r)) if c == r => continue,
            (None, None) => break,
            (c, r) => {
                return format!(
                    "first difference at line {number}:\n  committed: {}\n  from types: {}",
                    c.unwrap_or("<end of file>"),
                    r.unwrap_or("<end of file>")
                );
            }
        }
    }
    "the files differ only in line endings".into()
}

#[test]
fn committed_crds_match_the_rust_types() {
    let dir = crds_dir();
    let rendered = crd::render().expect("the CRDs render");
    let mut problems = Vec::new();
    for crd in &rendered {
        let path = dir.join(&crd.file_name);
        let expected = crd.file_contents();
        match fs::read_to_string(&path) {
            Err(e) => problems.push(format!(
                "crds/{} cannot be read ({e}); {FIX}",
                crd.file_name
            )),
            Ok(committed) if committed != expected => problems.push(format!(
                "crds/{} is out of date with the Rust types; {FIX}\n{}",
                crd.file_name,
                first_difference(&committed, &expected)
            )),
            Ok(_) => {}
        }
    }
    let generated: BTreeSet<&str> = rendered.iter().map(|c| c.file_name.as_str()).collect();
    for entry in fs::read_dir(&dir).expect("crds/ exists") {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if generated.contains(name.as_str()) {
            continue;
        }
        let contents = fs::read_to_string(dir.join(&name)).unwrap_or_default();
        if contents.lines().next() == Some(crd::HEADER) {
            problems.push(format!(
                "crds/{name} was generated for a type that no longer exists; {FIX} (it removes stale generated files)"
            ));
        } else {
            problems.push(format!(
                "crds/{name} is not generated from any type; crds/ holds generated CRDs only: move or delete it"
            ));
        }
    }
    assert!(problems.is_empty(), "CRD drift:\n{}", problems.join("\n"));
}
