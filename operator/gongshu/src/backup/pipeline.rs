//! The byte pipeline of one backup object: plaintext → zstd → age → ciphertext chunks, and
//! back. Both directions hash what passes through (SHA-256 of the plaintext and of the
//! ciphertext) so the manifest can say what was written and a restore can prove it read the
//! same bytes.
//!
//! The CPU work (compression, encryption) runs on a blocking thread behind `std::io::Write` /
//! `Read`; the async side (PostgreSQL `COPY`, S3 uploads) talks to it over bounded channels of
//! [`CHUNK`]-sized buffers, so memory stays constant whatever the size of the source.

use std::{
    io::{self, Read, Write},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// Size of the ciphertext chunks handed to the uploader (and of the channel buffers).
pub const CHUNK: usize = 4 << 20;
/// Chunks in flight between two stages.
pub const DEPTH: usize = 4;

/// Gathers small pieces (a `COPY` message per row, 8 KiB file reads) into buffers of
/// [`GATHER`] bytes, so the thread on the other side of a channel wakes once per megabyte
/// rather than once per piece.
#[derive(Debug, Default)]
pub struct Gather {
    buf: BytesMut,
}

/// The size of the buffers [`Gather`] hands on.
pub const GATHER: usize = 1 << 20;

impl Gather {
    /// Adds `piece`; returns a full buffer when there is one.
    pub fn push(&mut self, piece: &[u8]) -> Option<Bytes> {
        if self.buf.is_empty() {
            self.buf.reserve(GATHER);
        }
        self.buf.extend_from_slice(piece);
        (self.buf.len() >= GATHER).then(|| self.buf.split().freeze())
    }

    /// What is left at the end, if anything.
    pub fn rest(self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.freeze())
    }
}

/// What one object's pipeline measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sealed {
    /// Plaintext bytes.
    pub plain_bytes: u64,
    /// SHA-256 of the plaintext, hex.
    pub plain_sha256: String,
    /// Ciphertext bytes (the object's size).
    pub cipher_bytes: u64,
    /// SHA-256 of the ciphertext, hex.
    pub cipher_sha256: String,
}

/// The end of the pipeline on the blocking side: gathers ciphertext into [`CHUNK`]s, hashes
/// it and sends it to the uploader.
struct Chunks {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
    sha: Sha256,
    bytes: u64,
}

impl Chunks {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.sha.update(data);
        self.bytes += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
            self.buf.reserve(CHUNK);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Plaintext in (`Write`), compressed and encrypted chunks out over a channel.
pub struct Sealer {
    encoder: zstd::stream::write::Encoder<'static, age::stream::StreamWriter<Chunks>>,
    sha: Sha256,
    bytes: u64,
    progress: Arc<AtomicU64>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer compressing at zstd `level` with `workers` extra compression threads, for
    /// `recipients`, sending ciphertext to `tx` and adding plaintext bytes to `progress`.
    pub fn new(
        level: i32,
        workers: u32,
        recipients: &[age::x25519::Recipient],
        tx: mpsc::Sender<Bytes>,
        progress: Arc<AtomicU64>,
    ) -> io::Result<Self> {
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(io::Error::other)?;
        let chunks = Chunks {
            tx,
            buf: BytesMut::with_capacity(CHUNK),
            sha: Sha256::new(),
            bytes: 0,
        };
        let mut encoder = zstd::stream::write::Encoder::new(encryptor.wrap_output(chunks)?, level)?;
        if workers > 0 {
            encoder.multithread(workers)?;
        }
        Ok(Self {
            encoder,
            sha: Sha256::new(),
            bytes: 0,
            progress,
        })
    }

    /// Ends the zstd frame and the age stream, sends the last chunk, and says what passed.
    pub fn finish(self) -> io::Result<Sealed> {
        let mut chunks = self.encoder.finish()?.finish()?;
        chunks.send()?;
        Ok(Sealed {
            plain_bytes: self.bytes,
            plain_sha256: hex::encode(self.sha.finalize()),
            cipher_bytes: chunks.bytes,
            cipher_sha256: hex::encode(chunks.sha.finalize()),
        })
    }
}

impl Write for Sealer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.encoder.write(data)?;
        self.sha.update(&data[..n]);
        self.bytes += n as u64;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

/// The blocking side's view of a channel of byte chunks: `Read` over them. An `Err` item ends
/// the stream with that error (a failed download, a checksum mismatch).
#[derive(Debug)]
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    /// Reads the chunks `rx` delivers, until the sender is dropped.
    pub fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        Self {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A reader that hashes and counts what is read through it.
#[derive(Debug)]
pub struct Hashing<R> {
    inner: R,
    sha: Sha256,
    bytes: u64,
}

impl<R: Read> Hashing<R> {
    /// Hashes what is read from `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            sha: Sha256::new(),
            bytes: 0,
        }
    }

    /// Reads to the end (what the consumer left), then gives the byte count and hex SHA-256.
    pub fn finish(mut self) -> io::Result<(u64, String)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.bytes, hex::encode(self.sha.finalize())))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.sha.update(&out[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The plaintext of one object being restored: decrypts with `identities` and decompresses
/// what `ciphertext` yields; hashes the plaintext.
pub type Opened = Hashing<zstd::stream::read::Decoder<'static, io::BufReader<DecryptedStream>>>;
/// The decrypted (still compressed) bytes of an object.
pub type DecryptedStream = age::stream::StreamReader<ChannelReader>;

/// Opens an object's ciphertext for reading its plaintext.
pub fn open(
    ciphertext: ChannelReader,
    identities: &[Box<dyn age::Identity + Send + Sync>],
) -> io::Result<Opened> {
    let decryptor = age::Decryptor::new(ciphertext).map_err(io::Error::other)?;
    let decrypted = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
    Ok(Hashing::new(zstd::stream::read::Decoder::new(decrypted)?))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use age::secrecy::ExposeSecret;

    use super::*;

    fn keys() -> (age::x25519::Identity, age::x25519::Recipient) {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public();
        (identity, recipient)
    }

    /// Seals `data` on a blocking thread and gathers the ciphertext.
    fn seal(data: &[u8], recipients: &[age::x25519::Recipient]) -> (Vec<u8>, Sealed) {
        let (tx, mut rx) = mpsc::channel(DEPTH);
        let recipients = recipients.to_vec();
        let data = data.to_vec();
        let writer = std::thread::spawn(move || {
            let mut sealer = Sealer::new(3, 0, &recipients, tx, Arc::default())?;
            for piece in data.chunks(100_000) {
                sealer.write_all(piece)?;
            }
            sealer.finish()
        });
        let mut out = Vec::new();
        while let Some(chunk) = rx.blocking_recv() {
            assert!(chunk.len() <= CHUNK + 200_000, "chunks stay bounded");
            out.extend_from_slice(&chunk);
        }
        (out, writer.join().unwrap().unwrap())
    }

    fn unseal(
        ciphertext: Vec<u8>,
        identity: age::x25519::Identity,
    ) -> io::Result<(Vec<u8>, u64, String)> {
        let (tx, rx) = mpsc::channel(DEPTH);
        let feeder = std::thread::spawn(move || {
            for piece in ciphertext.chunks(70_000) {
                let _ = tx.blocking_send(Ok(Bytes::copy_from_slice(piece)));
            }
        });
        let identities: Vec<Box<dyn age::Identity + Send + Sync>> = vec![Box::new(identity)];
        let mut opened = open(ChannelReader::new(rx), &identities)?;
        let mut plain = Vec::new();
        opened.read_to_end(&mut plain)?;
        let (bytes, sha) = opened.finish()?;
        feeder.join().unwrap();
        Ok((plain, bytes, sha))
    }

    #[test]
    fn an_object_round_trips_with_both_hashes_right() {
        let (identity, recipient) = keys();
        let data: Vec<u8> = (0..10_000_000u32).map(|i| (i % 251) as u8).collect();
        let (ciphertext, sealed) = seal(&data, &[recipient]);
        assert_eq!(sealed.plain_bytes, data.len() as u64);
        assert_eq!(sealed.plain_sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(sealed.cipher_bytes, ciphertext.len() as u64);
        assert_eq!(
            sealed.cipher_sha256,
            hex::encode(Sha256::digest(&ciphertext))
        );
        assert!(
            ciphertext.len() < data.len() / 10,
            "compressed before encryption"
        );
        let (plain, bytes, sha) = unseal(ciphertext, identity).unwrap();
        assert_eq!(plain, data);
        assert_eq!((bytes, sha), (sealed.plain_bytes, sealed.plain_sha256));
    }

    #[test]
    fn any_one_of_several_recipients_decrypts_and_no_other_key_does() {
        let (a, ra) = keys();
        let (b, rb) = keys();
        let (stranger, _) = keys();
        let (ciphertext, _) = seal(b"one record", &[ra, rb]);
        for identity in [a, b] {
            assert_eq!(
                unseal(ciphertext.clone(), identity).unwrap().0,
                b"one record"
            );
        }
        let error = unseal(ciphertext, stranger).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{error}");
    }

    #[test]
    fn an_empty_object_is_still_a_valid_age_file() {
        let (identity, recipient) = keys();
        let (ciphertext, sealed) = seal(b"", &[recipient]);
        assert!(ciphertext.starts_with(b"age-encryption.org/v1\n"));
        assert_eq!(sealed.plain_bytes, 0);
        assert!(unseal(ciphertext, identity).unwrap().0.is_empty());
    }

    #[test]
    fn a_flipped_ciphertext_byte_is_refused() {
        let (identity, recipient) = keys();
        let (mut ciphertext, _) = seal(&[7u8; 300_000], &[recipient]);
        let at = ciphertext.len() - 40;
        ciphertext[at] ^= 1;
        assert!(unseal(ciphertext, identity).is_err());
    }

    #[test]
    fn gathered_pieces_come_out_in_full_buffers_then_the_rest() {
        let mut gather = Gather::default();
        let piece = [7u8; 1000];
        let full: Vec<Bytes> = (0..3000).filter_map(|_| gather.push(&piece)).collect();
        assert_eq!(full.len(), 2);
        assert!(
            full.iter()
                .all(|b| b.len() >= GATHER && b.len() < GATHER + 1000)
        );
        let rest = gather.rest().unwrap();
        assert_eq!(
            full.iter().map(Bytes::len).sum::<usize>() + rest.len(),
            3_000_000
        );
        assert_eq!(Gather::default().rest(), None);
    }

    #[test]
    fn recipients_parse_from_their_bech32_text() {
        let (identity, recipient) = keys();
        let text = recipient.to_string();
        assert_eq!(
            age::x25519::Recipient::from_str(&text).unwrap().to_string(),
            text
        );
        assert!(
            identity
                .to_string()
                .expose_secret()
                .starts_with("AGE-SECRET-KEY-1")
        );
    }
}
