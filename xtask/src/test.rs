//! `cargo xtask test`.

pub async fn run(_lint: bool) -> crate::Result {
    Err("test: not yet".into())
}
