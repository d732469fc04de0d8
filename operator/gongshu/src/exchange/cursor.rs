//! Page tokens for `api` queries. A cursor carries the last key read, which may include key
//! columns the grant does not cover, so it is sealed (XChaCha20-Poly1305) with a key only the
//! exchange holds: the caller can hand it back, not read or forge it, and a cursor of one
//! grant is refused by another.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use rand::RngCore;

/// Seals and opens cursors.
pub struct Cursors {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cursors")
    }
}

impl Cursors {
    /// Cursors sealed with `key`; with replicas, give them all the same key
    /// (`--cursor-key-file`) so a page started on one continues on another.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// Cursors sealed with a key of this process only.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self::new(key)
    }

    /// The token for "after `key`" within `grant` (`namespace/name`).
    pub fn seal(&self, grant: &str, key: &[String]) -> String {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let plain = serde_json::to_vec(key).unwrap_or_default();
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: grant.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The key a token of `grant` stands for, or `None` for a token this exchange did not
    /// seal for that grant.
    pub fn open(&self, grant: &str, token: &str) -> Option<Vec<String>> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(24);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: grant.as_bytes(),
                },
            )
            .ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_cursor_opens_only_for_its_grant_and_hides_the_key() {
        let cursors = Cursors::random();
        let key = vec!["110101199003077777".to_owned(), "east".to_owned()];
        let token = cursors.seal("ns/a", &key);
        assert!(!token.contains("1101"), "the key must not be readable");
        assert_eq!(cursors.open("ns/a", &token), Some(key));
        assert_eq!(cursors.open("ns/b", &token), None);
        assert_eq!(Cursors::random().open("ns/a", &token), None);
        let mut forged = token.into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            cursors.open("ns/a", std::str::from_utf8(&forged).unwrap()),
            None
        );
        assert_eq!(cursors.open("ns/a", "!!"), None);
    }
}
