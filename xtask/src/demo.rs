//! `cargo xtask demo`.

pub async fn up() -> crate::Result {
    Err("demo: not yet".into())
}

pub fn down() -> crate::Result {
    Ok(())
}
