//! Path sources: a file or a directory tree as one tar archive, and back.
//!
//! The walk is ours rather than `tar::Builder::append_dir_all` because files may grow while
//! they are read (the exchange's active audit segment): each file is archived at the size it
//! had when its header was written (`take(size)`), so the archive stays well-formed, and a
//! file that shrank is an error rather than a corrupt archive.

use std::{
    fs, io,
    io::{Read, Write},
    path::{Path, PathBuf},
};

/// What an archive holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Archived {
    /// Regular files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The regular files under `root` (or `root` itself) and their total size, for progress.
pub fn measure(root: &Path) -> io::Result<Archived> {
    let mut total = Archived::default();
    walk(root, Path::new(""), &mut |_, _, meta| {
        if meta.is_file() {
            total.files += 1;
            total.bytes += meta.len();
        }
        Ok(())
    })?;
    Ok(total)
}

/// Writes `root` as a tar archive to `out`: a file under its own name, a directory's content
/// under relative paths, in name order; symbolic links are kept as links.
pub fn write<W: Write>(root: &Path, out: W) -> io::Result<(Archived, W)> {
    let mut builder = tar::Builder::new(out);
    let mut archived = Archived::default();
    walk(root, Path::new(""), &mut |path, relative, meta| {
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(meta, tar::HeaderMode::Deterministic);
        if meta.is_dir() {
            builder.append_data(&mut header, relative, io::empty())
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(path)?;
            builder.append_link(&mut header, relative, target)
        } else if meta.is_file() {
            let size = meta.len();
            let file = fs::File::open(path)?;
            let mut exact = Exact {
                inner: file.take(size),
                left: size,
                path,
            };
            builder.append_data(&mut header, relative, &mut exact)?;
            archived.files += 1;
            archived.bytes += size;
            Ok(())
        } else {
            // Sockets, devices and FIFOs are not data.
            Ok(())
        }
    })?;
    Ok((archived, builder.into_inner()?))
}

/// Reads exactly `left` bytes or fails: a file that shrank while it was archived.
struct Exact<'a, R> {
    inner: R,
    left: u64,
    path: &'a Path,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        if n == 0 && self.left > 0 && !out.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} shrank while it was backed up ({} bytes missing)",
                    self.path.display(),
                    self.left
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

type Visit<'a> = dyn FnMut(&Path, &Path, &fs::Metadata) -> io::Result<()> + 'a;

fn walk(path: &Path, relative: &Path, visit: &mut Visit<'_>) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let relative: PathBuf = if relative.as_os_str().is_empty() {
        if meta.is_dir() {
            // The root directory itself is not an entry: its content is.
            return walk_children(path, relative, visit);
        }
        PathBuf::from(path.file_name().unwrap_or(path.as_os_str()))
    } else {
        relative.to_path_buf()
    };
    visit(path, &relative, &meta)?;
    if meta.is_dir() {
        walk_children(path, &relative, visit)?;
    }
    Ok(())
}

fn walk_children(dir: &Path, relative: &Path, visit: &mut Visit<'_>) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        walk(&dir.join(&name), &relative.join(&name), visit)?;
    }
    Ok(())
}

/// Unpacks an archive into `dir` (created if missing). Entries cannot escape `dir` (the `tar`
/// crate refuses `..` and absolute paths).
pub fn unpack<R: Read>(archive: R, dir: &Path) -> io::Result<Archived> {
    fs::create_dir_all(dir)?;
    let mut archive = tar::Archive::new(archive);
    archive.set_preserve_permissions(false);
    archive.set_overwrite(true);
    let mut restored = Archived::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type().is_file() {
            restored.files += 1;
            restored.bytes += entry.size();
        }
        entry.unpack_in(dir)?;
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/data.csv"), "id,name\n1,x\n").unwrap();
        fs::write(dir.path().join("top.json"), "{}").unwrap();
        std::os::unix::fs::symlink("top.json", dir.path().join("link")).unwrap();
        dir
    }

    #[test]
    fn a_directory_round_trips_with_its_links() {
        let source = tree();
        let (archived, bytes) = write(source.path(), Vec::new()).unwrap();
        assert_eq!(
            archived,
            Archived {
                files: 2,
                bytes: 14
            }
        );
        assert_eq!(measure(source.path()).unwrap(), archived);
        let target = tempfile::tempdir().unwrap();
        assert_eq!(unpack(&bytes[..], target.path()).unwrap(), archived);
        assert_eq!(
            fs::read_to_string(target.path().join("a/b/data.csv")).unwrap(),
            "id,name\n1,x\n"
        );
        assert_eq!(
            fs::read_link(target.path().join("link")).unwrap(),
            Path::new("top.json")
        );
    }

    #[test]
    fn a_single_file_is_archived_under_its_name() {
        let source = tree();
        let (archived, bytes) = write(&source.path().join("top.json"), Vec::new()).unwrap();
        assert_eq!(archived.files, 1);
        let target = tempfile::tempdir().unwrap();
        unpack(&bytes[..], target.path()).unwrap();
        assert_eq!(fs::read(target.path().join("top.json")).unwrap(), b"{}");
    }

    #[test]
    fn the_same_tree_gives_the_same_archive() {
        let source = tree();
        let a = write(source.path(), Vec::new()).unwrap().1;
        let b = write(source.path(), Vec::new()).unwrap().1;
        assert_eq!(a, b, "deterministic headers and order");
    }

    #[test]
    fn a_missing_source_names_the_path() {
        let error = write(Path::new("/nonexistent/gongshu"), Vec::new()).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/gongshu"),
            "{error}"
        );
    }
}
