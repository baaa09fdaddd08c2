//! `manifest.json`: the size and sha256 of every file of a model directory, so a truncated,
//! tampered or half-copied model is refused with the name of the file that is wrong. The same
//! manifest travels to S3 beside `model.tar.gz`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The manifest's file name inside a model directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The value of the manifest's `format` field.
pub const MANIFEST_FORMAT: &str = "squint-manifest";

/// One file of a model directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the model directory (`/`-separated, no `..`).
    pub path: String,
    pub size: u64,
    /// Lower-case hex sha256 of the file's bytes.
    pub sha256: String,
}

/// Every file of a model directory with its size and digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub files: Vec<FileEntry>,
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Manifest {
    /// The manifest of `files` (`(path, bytes)`), sorted by path.
    pub fn of<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Manifest {
        let mut files: Vec<FileEntry> = files
            .into_iter()
            .map(|(path, bytes)| FileEntry {
                path: path.to_string(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest {
            format: MANIFEST_FORMAT.into(),
            version: 1,
            files,
        }
    }

    /// Parses and checks a `manifest.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest> {
        let bad = |message: String| Error::Checkpoint {
            file: MANIFEST_FILE.into(),
            message,
        };
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a valid manifest: {e}")))?;
        if m.format != MANIFEST_FORMAT || m.version != 1 {
            return Err(bad(format!(
                "format {:?} version {} is not {MANIFEST_FORMAT:?} version 1",
                m.format, m.version
            )));
        }
        for f in &m.files {
            let safe = !f.path.is_empty()
                && !f.path.starts_with('/')
                && !f.path.contains('\\')
                && f.path
                    .split('/')
                    .all(|part| !part.is_empty() && part != "." && part != "..");
            if !safe {
                return Err(bad(format!(
                    "file path {:?} is not a plain relative path",
                    f.path
                )));
            }
            if f.sha256.len() != 64
                || !f
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(bad(format!(
                    "{}: sha256 {:?} is not 64 lower-case hex digits",
                    f.path, f.sha256
                )));
            }
        }
        Ok(m)
    }

    pub fn to_json(&self) -> String {
        // A struct of strings and integers always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    pub fn entry(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Checks one file's bytes against its entry: size first (cheap, names truncation), then
    /// the digest (names tampering).
    pub fn verify(&self, path: &str, bytes: &[u8]) -> Result<()> {
        self.check_size(path, bytes.len())?;
        self.check_digest(path, &sha256_hex(bytes))
    }

    /// As [`Manifest::verify`], with the sha256 (hex) already computed by the caller: for hosts
    /// whose own hash is much faster than hashing in WebAssembly (the browser's WebCrypto).
    pub fn verify_digest(&self, path: &str, len: usize, sha256: &str) -> Result<()> {
        self.check_size(path, len)?;
        self.check_digest(path, &sha256.to_ascii_lowercase())
    }

    fn listed(&self, path: &str) -> Result<&FileEntry> {
        self.entry(path).ok_or_else(|| Error::Checkpoint {
            file: MANIFEST_FILE.into(),
            message: format!("does not list {path}"),
        })
    }

    /// The size alone (truncation shows before anything is parsed).
    pub fn check_size(&self, path: &str, len: usize) -> Result<()> {
        let entry = self.listed(path)?;
        if entry.size != len as u64 {
            return Err(Error::Checkpoint {
                file: path.to_string(),
                message: format!(
                    "is {len} bytes, manifest.json says {} (truncated or replaced?)",
                    entry.size
                ),
            });
        }
        Ok(())
    }

    fn check_digest(&self, path: &str, digest: &str) -> Result<()> {
        let entry = self.listed(path)?;
        if digest != entry.sha256 {
            return Err(Error::Checkpoint {
                file: path.to_string(),
                message: format!(
                    "sha256 {digest} does not match manifest.json ({}): the file was modified or corrupted",
                    entry.sha256
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn round_trip_and_detection() {
        let m = Manifest::of([("b.json", &b"{}"[..]), ("a.bin", &b"\x01\x02"[..])]);
        assert_eq!(m.files[0].path, "a.bin");
        let back = Manifest::from_json(m.to_json().as_bytes()).unwrap();
        assert_eq!(back, m);
        back.verify("a.bin", b"\x01\x02").unwrap();
        let e = back.verify("a.bin", b"\x01").unwrap_err().to_string();
        assert!(e.contains("a.bin") && e.contains("truncated"), "{e}");
        let e = back.verify("a.bin", b"\x01\x03").unwrap_err().to_string();
        assert!(e.contains("sha256") && e.contains("modified"), "{e}");
        assert!(back
            .verify("c.txt", b"")
            .unwrap_err()
            .to_string()
            .contains("does not list c.txt"));
    }

    #[test]
    fn rejects_unsafe_paths_and_bad_digests() {
        for path in ["../x", "/etc/passwd", "a//b", "", "a\\\\b"] {
            let json = format!(
                r#"{{"format":"squint-manifest","version":1,"files":[{{"path":"{path}","size":1,"sha256":"{}"}}]}}"#,
                "0".repeat(64)
            );
            assert!(Manifest::from_json(json.as_bytes()).is_err(), "{path}");
        }
        let json =
            r#"{"format":"squint-manifest","version":1,"files":[{"path":"a","size":1,"sha256":"xyz"}]}"#;
        assert!(Manifest::from_json(json.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("hex"));
        assert!(Manifest::from_json(b"[]").is_err());
    }
}
