//! Images built locally, never pulled: one-layer `docker save` archives written here and
//! imported into the node's containerd with `ctr images import`.
//!
//! - the pause image (the pods' sandbox): Kubernetes' own `build/pause/linux/pause.c` from the
//!   pinned `k8s.io/kubernetes` module, compiled statically with gcc;
//! - the `gongshu` image: the workspace's `gongshu` binary, the shared libraries `ldd` lists,
//!   the host's CA certificates and an `/etc/passwd` with the non-root user 65532.

use std::{
    fs::File,
    io::{BufWriter, Read, Write},
    path::{Path, PathBuf},
    process::Command,
};

use sha2::{Digest, Sha256};

use crate::{Error, upstream};

/// The user the images run as (distroless' `nonroot`).
pub const NONROOT_UID: u32 = 65532;

/// What goes into an image's single layer.
#[derive(Debug, Default)]
pub struct Layer {
    /// Regular files: path in the image, host file whose content it gets, mode.
    pub files: Vec<(String, PathBuf, u32)>,
    /// Files given by content: path in the image, content, mode.
    pub contents: Vec<(String, Vec<u8>, u32)>,
    /// Directories with a mode other than 0755 (e.g. `/tmp`, 1777).
    pub dirs: Vec<(String, u32)>,
}

/// The image's configuration: entrypoint and user.
#[derive(Debug)]
pub struct ImageConfig<'a> {
    /// `Entrypoint`.
    pub entrypoint: &'a [&'a str],
    /// `User` (numeric, so that the kubelet can check `runAsNonRoot`).
    pub user: &'a str,
}

/// The pause binary, compiled from the pinned Kubernetes module's `pause.c` into the cache
/// once (`gcc -static`, a few hundred milliseconds).
pub fn ensure_pause(repo: &Path) -> Result<PathBuf, Error> {
    let out = upstream::cache_dir()
        .join("bin")
        .join(format!("pause-{}", upstream::KUBERNETES_VERSION))
        .join("pause");
    if out.exists() {
        return Ok(out);
    }
    let module =
        upstream::go_mod_download(&repo.join("e2e/upstream/kubernetes"), "k8s.io/kubernetes")?;
    let source = module.join("build/pause/linux/pause.c");
    let dir = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join("pause.tmp");
    let said = Command::new("gcc")
        .args(["-Os", "-static", "-Wall", "-Werror"])
        .arg(format!("-DVERSION={}", upstream::KUBERNETES_VERSION))
        .arg("-o")
        .arg(&tmp)
        .arg(&source)
        .output()
        .map_err(|e| Error::Spawn {
            program: "gcc".into(),
            source: e,
        })?;
    if !said.status.success() {
        return Err(Error::Harness(format!(
            "gcc -static {} failed ({}): {}",
            source.display(),
            said.status,
            String::from_utf8_lossy(&said.stderr).trim()
        )));
    }
    std::fs::rename(&tmp, &out).map_err(|e| Error::io(&out, e))?;
    Ok(out)
}

/// The layer and configuration of the pause image.
pub fn pause_image(pause: &Path) -> (Layer, ImageConfig<'static>) {
    (
        Layer {
            files: vec![("pause".into(), pause.to_path_buf(), 0o755)],
            ..Default::default()
        },
        ImageConfig {
            entrypoint: &["/pause"],
            user: "65535:65535",
        },
    )
}

/// The layer of the `gongshu` image for `binary` (at `/usr/local/bin/gongshu`).
pub fn gongshu_layer(binary: &Path) -> Result<Layer, Error> {
    let mut files = vec![("usr/local/bin/gongshu".into(), binary.to_path_buf(), 0o755)];
    for lib in shared_libraries(binary)? {
        let path = lib.display().to_string();
        files.push((path.trim_start_matches('/').to_owned(), lib, 0o755));
    }
    let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if !certs.exists() {
        return Err(Error::Harness(format!(
            "{} is missing (Debian's ca-certificates)",
            certs.display()
        )));
    }
    files.push((
        "etc/ssl/certs/ca-certificates.crt".into(),
        certs.to_path_buf(),
        0o644,
    ));
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{NONROOT_UID}:{NONROOT_UID}:nonroot:/home/nonroot:/sbin/nologin\n"
    );
    let group = format!("root:x:0:\nnonroot:x:{NONROOT_UID}:\n");
    Ok(Layer {
        files,
        contents: vec![
            ("etc/passwd".into(), passwd.into_bytes(), 0o644),
            ("etc/group".into(), group.into_bytes(), 0o644),
            (
                "etc/nsswitch.conf".into(),
                b"hosts: files dns\n".to_vec(),
                0o644,
            ),
        ],
        dirs: vec![("tmp".into(), 0o1777), ("home/nonroot".into(), 0o755)],
    })
}

/// The shared libraries `ldd` lists for `binary`, the dynamic loader included.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, Error> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| Error::Spawn {
            program: "ldd".into(),
            source: e,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A static binary: nothing to add.
        return Ok(Vec::new());
    }
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, right)) => right.trim().split(' ').next()?,
                None => l.split(' ').next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// Writes `layer` to `out` as a `docker save` archive of one image tagged
/// `reference(layer digest hex)`; returns the reference.
pub fn write_archive(
    out: &Path,
    reference: impl FnOnce(&str) -> String,
    layer: &Layer,
    config: &ImageConfig<'_>,
) -> Result<String, Error> {
    let dir = out.parent().unwrap_or(Path::new("."));
    let layer_tar = dir.join(format!(
        "{}.layer.tar",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("image")
    ));
    write_layer(&layer_tar, layer)?;
    let layer_hex = sha256_file(&layer_tar)?;
    let reference = reference(&layer_hex);
    let config_json = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "User": config.user,
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "Entrypoint": config.entrypoint,
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_hex}")]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "gongshu-e2e"}],
    })
    .to_string();
    let config_hex = hex::encode(Sha256::digest(config_json.as_bytes()));
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [reference],
        "Layers": [format!("{layer_hex}/layer.tar")],
    }])
    .to_string();

    let file = File::create(out).map_err(|e| Error::io(out, e))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let io = |e| Error::io(out, e);
    append_bytes(
        &mut tar,
        &format!("{config_hex}.json"),
        config_json.as_bytes(),
        0o644,
    )
    .map_err(io)?;
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    tar.append_data(&mut header, format!("{layer_hex}/"), std::io::empty())
        .map_err(io)?;
    let mut f = File::open(&layer_tar).map_err(|e| Error::io(&layer_tar, e))?;
    let len = f.metadata().map_err(|e| Error::io(&layer_tar, e))?.len();
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(len);
    tar.append_data(&mut header, format!("{layer_hex}/layer.tar"), &mut f)
        .map_err(io)?;
    append_bytes(&mut tar, "manifest.json", manifest.as_bytes(), 0o644).map_err(io)?;
    tar.into_inner().and_then(|mut w| w.flush()).map_err(io)?;
    let _ = std::fs::remove_file(&layer_tar);
    Ok(reference)
}

fn write_layer(out: &Path, layer: &Layer) -> Result<(), Error> {
    let file = File::create(out).map_err(|e| Error::io(out, e))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let io = |e| Error::io(out, e);
    // Every parent directory once, before its entries, then the files.
    let mut dirs = std::collections::BTreeMap::<String, u32>::new();
    let all_paths = layer
        .files
        .iter()
        .map(|(p, _, _)| p.as_str())
        .chain(layer.contents.iter().map(|(p, _, _)| p.as_str()));
    for path in all_paths {
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.entry(p.display().to_string()).or_insert(0o755);
            parent = p.parent();
        }
    }
    for (d, mode) in &layer.dirs {
        dirs.insert(d.clone(), *mode);
        let mut parent = Path::new(d).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.entry(p.display().to_string()).or_insert(0o755);
            parent = p.parent();
        }
    }
    for (d, mode) in &dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(*mode);
        header.set_size(0);
        header.set_mtime(0);
        tar.append_data(&mut header, format!("{d}/"), std::io::empty())
            .map_err(io)?;
    }
    for (path, source, mode) in &layer.files {
        // Follows symlinks: the image gets the library itself under the name ldd printed.
        let mut f = File::open(source).map_err(|e| Error::io(source, e))?;
        let len = f.metadata().map_err(|e| Error::io(source, e))?.len();
        let mut header = tar::Header::new_gnu();
        header.set_mode(*mode);
        header.set_size(len);
        header.set_mtime(0);
        tar.append_data(&mut header, path, &mut f).map_err(io)?;
    }
    for (path, bytes, mode) in &layer.contents {
        append_bytes(&mut tar, path, bytes, *mode).map_err(io)?;
    }
    tar.into_inner().and_then(|mut w| w.flush()).map_err(io)
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(mode);
    header.set_size(bytes.len() as u64);
    header.set_mtime(0);
    tar.append_data(&mut header, path, bytes)
}

fn sha256_file(path: &Path) -> Result<String, Error> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entries(tar_bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes).unwrap();
                (path, bytes)
            })
            .collect()
    }

    #[test]
    fn an_archive_holds_the_manifest_config_and_layer_docker_load_expects() {
        let dir = std::env::temp_dir().join(format!(
            "gongshu-image-test-{}",
            crate::harness::random_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let binary = dir.join("tool");
        std::fs::write(&binary, b"#!/bin/true\n").unwrap();
        let layer = Layer {
            files: vec![("usr/local/bin/tool".into(), binary, 0o755)],
            contents: vec![(
                "etc/passwd".into(),
                b"nonroot:x:65532:65532::/:/x\n".to_vec(),
                0o644,
            )],
            dirs: vec![("tmp".into(), 0o1777)],
        };
        let config = ImageConfig {
            entrypoint: &["/usr/local/bin/tool"],
            user: "65532:65532",
        };
        let out = dir.join("image.tar");
        let reference = write_archive(
            &out,
            |hex| format!("gongshu.local/t:{}", &hex[..12]),
            &layer,
            &config,
        )
        .unwrap();
        let outer = entries(&std::fs::read(&out).unwrap());
        let manifest: serde_json::Value = serde_json::from_slice(&outer["manifest.json"]).unwrap();
        assert_eq!(manifest[0]["RepoTags"][0], reference);
        let layer_path = manifest[0]["Layers"][0].as_str().unwrap();
        let layer_bytes = &outer[layer_path];
        let config_json: serde_json::Value =
            serde_json::from_slice(&outer[manifest[0]["Config"].as_str().unwrap()]).unwrap();
        let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(layer_bytes)));
        assert_eq!(config_json["rootfs"]["diff_ids"][0], diff_id);
        assert!(reference.ends_with(&diff_id["sha256:".len()..][..12]));
        assert_eq!(config_json["config"]["User"], "65532:65532");
        let inner = entries(layer_bytes);
        let names: Vec<&str> = inner.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/passwd",
                "tmp/",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/tool"
            ]
        );
        assert_eq!(inner["usr/local/bin/tool"], b"#!/bin/true\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader() {
        let libs = shared_libraries(Path::new("/bin/sh")).unwrap();
        assert!(
            libs.iter()
                .any(|l| l.to_string_lossy().contains("ld-linux")),
            "{libs:?}"
        );
        assert!(
            libs.iter().all(|l| l.is_absolute() && l.exists()),
            "{libs:?}"
        );
    }
}
