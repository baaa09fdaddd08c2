//! The files of a model directory, as bytes: what every host hands to [`crate::Pipeline`].
//! Reading them from disk (memory-mapped) is the native-only part, in [`ModelFiles::from_dir`].

#[cfg(not(target_arch = "wasm32"))]
use crate::error::{Error, Result};

/// Bytes of a weights file: owned (wasm hosts, tests) or memory-mapped (native).
#[derive(Debug)]
pub enum Bytes {
    Owned(Vec<u8>),
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            #[cfg(not(target_arch = "wasm32"))]
            Bytes::Mapped(m) => m,
        }
    }
}

/// The tokenizer definition: `tokenizer.json`, or `vocab.txt` with optional `tokenizer_config.json`.
#[derive(Debug)]
pub enum TokenizerFiles {
    Json(Vec<u8>),
    Vocab {
        vocab: Vec<u8>,
        tokenizer_config: Option<Vec<u8>>,
    },
}

/// The weights: a safetensors file, or (native only) a PyTorch pickle checkpoint on disk.
#[derive(Debug)]
pub enum WeightsFile {
    Safetensors {
        name: String,
        bytes: Bytes,
    },
    #[cfg(not(target_arch = "wasm32"))]
    PyTorch(std::path::PathBuf),
}

/// Everything needed to build a pipeline: `config.json`, the tokenizer and the weights.
#[derive(Debug)]
pub struct ModelFiles {
    pub config: Vec<u8>,
    pub tokenizer: TokenizerFiles,
    pub weights: WeightsFile,
}

#[cfg(not(target_arch = "wasm32"))]
impl ModelFiles {
    /// Reads a model directory: a Hugging Face checkpoint or a squint INT8 artifact.
    /// `tokenizer.json` is preferred over `vocab.txt`; weights are `model.int8.safetensors`,
    /// else `model.safetensors` (both memory-mapped), else `pytorch_model.bin`. When the
    /// directory has a `manifest.json` every file it lists is checked (size and sha256); an
    /// INT8 artifact must have one.
    pub fn from_dir(dir: &std::path::Path) -> Result<ModelFiles> {
        Self::open_unchecked(dir)?.verify()
    }

    /// As [`ModelFiles::from_dir`], with the manifest's sizes checked but not yet its sha256
    /// digests: see [`UncheckedFiles::build_while_checking`].
    pub fn open_unchecked(dir: &std::path::Path) -> Result<UncheckedFiles> {
        if !dir.is_dir() {
            return Err(Error::Io {
                path: dir.display().to_string(),
                message: "not a directory".into(),
            });
        }
        let read = |name: &str| -> Result<Option<Vec<u8>>> {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::Io {
                    path: path.display().to_string(),
                    message: e.to_string(),
                }),
            }
        };
        let config = read("config.json")?.ok_or_else(|| Error::Io {
            path: dir.join("config.json").display().to_string(),
            message: "missing: a model directory needs config.json".into(),
        })?;
        let tokenizer = if let Some(json) = read("tokenizer.json")? {
            TokenizerFiles::Json(json)
        } else if let Some(vocab) = read("vocab.txt")? {
            TokenizerFiles::Vocab {
                vocab,
                tokenizer_config: read("tokenizer_config.json")?,
            }
        } else {
            return Err(Error::Io {
                path: dir.display().to_string(),
                message: "no tokenizer: expected tokenizer.json or vocab.txt".into(),
            });
        };
        let int8 = dir.join(crate::artifact::INT8_FILE);
        let safetensors = dir.join("model.safetensors");
        let manifest = read(crate::manifest::MANIFEST_FILE)?;
        if manifest.is_none() && int8.is_file() {
            return Err(Error::Io {
                path: dir.join(crate::manifest::MANIFEST_FILE).display().to_string(),
                message:
                    "missing: an INT8 model directory carries a manifest.json (re-run `squint quantize`)"
                        .into(),
            });
        }
        let pending = match manifest {
            Some(json) => {
                let manifest = crate::manifest::Manifest::from_json(&json)?;
                let mut listed = Vec::with_capacity(manifest.files.len());
                for entry in &manifest.files {
                    let bytes = map_file(&dir.join(&entry.path))?;
                    manifest.check_size(&entry.path, bytes.as_ref().len())?;
                    listed.push((entry.path.clone(), bytes));
                }
                Some((manifest, listed))
            }
            None => None,
        };
        let weights = if int8.is_file() {
            WeightsFile::Safetensors {
                name: crate::artifact::INT8_FILE.into(),
                bytes: map_file(&int8)?,
            }
        } else if safetensors.is_file() {
            WeightsFile::Safetensors {
                name: "model.safetensors".into(),
                bytes: map_file(&safetensors)?,
            }
        } else if dir.join("pytorch_model.bin").is_file() {
            WeightsFile::PyTorch(dir.join("pytorch_model.bin"))
        } else {
            return Err(Error::Io {
                path: dir.display().to_string(),
                message:
                    "no weights: expected model.int8.safetensors, model.safetensors or pytorch_model.bin"
                        .into(),
            });
        };
        Ok(UncheckedFiles {
            files: ModelFiles {
                config,
                tokenizer,
                weights,
            },
            pending,
        })
    }
}

/// A model directory read by [`ModelFiles::open_unchecked`]: sizes match its manifest, digests
/// not yet checked. The files come out only through a digest check.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub struct UncheckedFiles {
    files: ModelFiles,
    /// The manifest and every file it lists, mapped (none without a manifest).
    pending: Option<(crate::manifest::Manifest, Vec<(String, Bytes)>)>,
}

#[cfg(not(target_arch = "wasm32"))]
impl UncheckedFiles {
    /// Hashes every file the manifest lists and compares it (sha256); names the first that differs.
    fn check(&self) -> Result<()> {
        if let Some((manifest, listed)) = &self.pending {
            for (path, bytes) in listed {
                manifest.verify(path, bytes.as_ref())?;
            }
        }
        Ok(())
    }

    /// The files, once every digest matches.
    pub fn verify(self) -> Result<ModelFiles> {
        self.check()?;
        Ok(self.files)
    }

    /// `build(files)` while a second thread checks the digests (for a bert-base artifact the
    /// sha256 takes about as long as the build). Its result only when they match; a mismatch
    /// is the error even when `build` failed too, since it names the cause.
    pub fn build_while_checking<T>(&self, build: impl FnOnce(&ModelFiles) -> Result<T>) -> Result<T> {
        std::thread::scope(|scope| {
            let check = scope.spawn(|| self.check());
            let built = build(&self.files);
            let checked = check.join().unwrap_or_else(|_| {
                Err(Error::Io {
                    path: crate::manifest::MANIFEST_FILE.into(),
                    message: "the thread checking the listed files' digests panicked".into(),
                })
            });
            checked.and(built)
        })
    }
}

/// Memory-maps a file read-only.
#[cfg(not(target_arch = "wasm32"))]
#[allow(unsafe_code)]
fn map_file(path: &std::path::Path) -> Result<Bytes> {
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: the map is read-only and private to this process; the one hazard is another
    // process truncating the file while it is mapped, which the loader cannot prevent (as for
    // every mmap-based safetensors reader). Weights are copied out during loading.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    Ok(Bytes::Mapped(map))
}
