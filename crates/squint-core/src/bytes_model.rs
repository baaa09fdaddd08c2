//! A model handed over as bytes, for hosts without a filesystem (the browser module, the edge
//! gateway's wasm guest): the files are checked against `manifest.json`, then loaded to run
//! on one thread — or loaded first and handed out once checked, while the host hashes them.

use std::collections::BTreeMap;

use crate::bert::{Batch, Workspace};
use crate::error::{Error, Result};
use crate::files::{Bytes, ModelFiles, TokenizerFiles, WeightsFile};
use crate::manifest::Manifest;
use crate::pipeline::{Pipeline, PipelineOptions};
use crate::{Answer, QaParams};

/// Weights file names a model directory may carry, INT8 first (as `ModelFiles::from_dir`).
pub const WEIGHT_FILES: [&str; 2] = ["model.int8.safetensors", "model.safetensors"];

/// The bytes of a model directory.
#[derive(Debug)]
pub struct ModelBytes<'a> {
    pub config: &'a [u8],
    pub tokenizer: &'a [u8],
    /// One of [`WEIGHT_FILES`].
    pub weights_name: &'a str,
    pub weights: Vec<u8>,
    /// `manifest.json`: required for INT8 artifacts (as on disk), checked when present.
    pub manifest: Option<&'a [u8]>,
}

/// sha256 (hex) of some of the files by name, computed by the host: compared with the manifest
/// instead of hashing those files here (the browser's WebCrypto is ~4x faster than hashing in
/// WebAssembly). Sizes are always checked; files without a digest are hashed here.
pub type Digests = BTreeMap<String, String>;

/// What was loaded: precision, the INT8 kernel running, the encoder's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub precision: &'static str,
    pub kernel: &'static str,
    pub layers: usize,
    pub hidden: usize,
    pub max_positions: usize,
    pub weights_bytes: usize,
}

/// A loaded model running on the caller's thread.
#[derive(Debug)]
pub struct BytesModel {
    pipeline: Pipeline,
    info: ModelInfo,
    /// Buffers of [`BytesModel::forward`], kept between calls.
    workspace: std::cell::RefCell<Workspace>,
}

/// A model built before its files' digests were checked against the manifest (sizes were):
/// only [`UncheckedModel::verify`] hands out the [`BytesModel`]. Lets a host hash the files
/// on another thread while the model is built.
#[derive(Debug)]
pub struct UncheckedModel {
    model: BytesModel,
    /// The files, kept until checked (those without a digest from the host are hashed here).
    files: HeldFiles,
}

impl UncheckedModel {
    /// Checks the files against the manifest with the host's `digests` (hashing the others
    /// here), then hands out the model.
    pub fn verify(self, digests: &Digests) -> Result<BytesModel> {
        self.files.check(digests)?;
        Ok(self.model)
    }
}

/// A model's files held as bytes, with the parsed manifest they are checked against.
#[derive(Debug)]
struct HeldFiles {
    manifest: Option<Manifest>,
    files: ModelFiles,
    weights_bytes: usize,
}

impl HeldFiles {
    /// Names checked, the manifest parsed (required for INT8).
    fn new(files: ModelBytes<'_>) -> Result<HeldFiles> {
        let ModelBytes {
            config,
            tokenizer,
            weights_name,
            weights,
            manifest,
        } = files;
        if !WEIGHT_FILES.contains(&weights_name) {
            return Err(Error::Checkpoint {
                file: weights_name.to_string(),
                message: format!("is not one of {}", WEIGHT_FILES.join(", ")),
            });
        }
        let manifest = match manifest {
            Some(json) => Some(Manifest::from_json(json)?),
            None if weights_name == WEIGHT_FILES[0] => {
                return Err(Error::Checkpoint {
                    file: "manifest.json".into(),
                    message: "an INT8 model needs its manifest.json (sizes and sha256 of every file)".into(),
                })
            }
            None => None,
        };
        Ok(HeldFiles {
            manifest,
            weights_bytes: weights.len(),
            files: ModelFiles {
                config: config.to_vec(),
                tokenizer: TokenizerFiles::Json(tokenizer.to_vec()),
                weights: WeightsFile::Safetensors {
                    name: weights_name.to_string(),
                    bytes: Bytes::Owned(weights),
                },
            },
        })
    }

    /// The files held, by name (what the manifest is checked for).
    fn named(&self) -> Vec<(&str, &[u8])> {
        let mut named = vec![("config.json", self.files.config.as_slice())];
        match &self.files.tokenizer {
            TokenizerFiles::Json(bytes) => named.push(("tokenizer.json", bytes)),
            TokenizerFiles::Vocab { vocab, .. } => named.push(("vocab.txt", vocab)),
        }
        match &self.files.weights {
            WeightsFile::Safetensors { name, bytes } => named.push((name, bytes.as_ref())),
            // Only read from disk by native hosts; never held as bytes.
            #[cfg(not(target_arch = "wasm32"))]
            WeightsFile::PyTorch(_) => {}
        }
        named
    }

    /// Sizes against the manifest (cheap: names truncation before anything is parsed).
    fn check_sizes(&self) -> Result<()> {
        if let Some(manifest) = &self.manifest {
            for (path, bytes) in self.named() {
                manifest.check_size(path, bytes.len())?;
            }
        }
        Ok(())
    }

    /// Sizes and digests against the manifest: the host's digests where given, else hashed here.
    fn check(&self, digests: &Digests) -> Result<()> {
        let named = self.named();
        if let Some(name) = digests.keys().find(|n| !named.iter().any(|(path, _)| path == n)) {
            return Err(Error::Checkpoint {
                file: name.clone(),
                message: format!(
                    "has a digest but is not one of the files loaded ({})",
                    named.iter().map(|(path, _)| *path).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        match &self.manifest {
            Some(manifest) => {
                for (path, bytes) in named {
                    match digests.get(path) {
                        Some(digest) => manifest.verify_digest(path, bytes.len(), digest)?,
                        None => manifest.verify(path, bytes)?,
                    }
                }
                Ok(())
            }
            None if !digests.is_empty() => Err(Error::Checkpoint {
                file: "manifest.json".into(),
                message: "is missing: digests were given but there is no manifest to check them against"
                    .into(),
            }),
            None => Ok(()),
        }
    }

    /// The pipeline, on one thread.
    fn build(&self) -> Result<BytesModel> {
        let options = PipelineOptions {
            threads: Some(1),
            batch: 1,
            precision: None,
        };
        let pipeline = Pipeline::load(&self.files, options)?;
        let config = pipeline.model().config();
        let info = ModelInfo {
            precision: pipeline.model().precision().name(),
            kernel: squint_kernels::isa().name(),
            layers: config.num_hidden_layers,
            hidden: config.hidden_size,
            max_positions: config.max_position_embeddings,
            weights_bytes: self.weights_bytes,
        };
        Ok(BytesModel {
            pipeline,
            info,
            workspace: Default::default(),
        })
    }
}

impl BytesModel {
    /// Checks the files against the manifest (with the host's `digests`, hashing the others
    /// here), then builds the pipeline.
    pub fn load(files: ModelBytes<'_>, digests: &Digests) -> Result<BytesModel> {
        let files = HeldFiles::new(files)?;
        files.check(digests)?;
        files.build()
    }

    /// Checks the sizes, builds the pipeline, and leaves the digests to
    /// [`UncheckedModel::verify`].
    pub fn build_unchecked(files: ModelBytes<'_>) -> Result<UncheckedModel> {
        let files = HeldFiles::new(files)?;
        files.check_sizes()?;
        Ok(UncheckedModel {
            model: files.build()?,
            files,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The answers, best first, and how many windows the context took.
    pub fn answer(&self, question: &str, context: &str, params: &QaParams) -> Result<(Vec<Answer>, usize)> {
        self.pipeline.answer_counted(question, context, params)
    }

    /// Start and end logits of every window, concatenated window by window (parity tests).
    pub fn logits(&self, question: &str, context: &str, params: &QaParams) -> Result<Vec<f32>> {
        Ok(self
            .pipeline
            .window_logits(question, context, params)?
            .concatenated())
    }

    /// One forward pass over exactly `seq` synthetic tokens (the ids `squint bench` and the
    /// onnxruntime-web anchor use), for timing the encoder alone.
    pub fn forward(&self, seq: usize) -> Result<()> {
        let model = self.pipeline.model();
        let config = model.config();
        if seq == 0 || seq > config.max_position_embeddings {
            return Err(Error::parameter(
                "seq",
                format!("must be 1..={}", config.max_position_embeddings),
            ));
        }
        let ids: Vec<u32> = (0..seq)
            .map(|i| ((1000 + i * 7919) % config.vocab_size) as u32)
            .collect();
        let types: Vec<u32> = (0..seq).map(|i| (i >= seq / 4) as u32).collect();
        let batch = Batch {
            ids: &ids,
            types: &types,
            lengths: &[seq],
            seq_len: seq,
        };
        let mut ws = self.workspace.borrow_mut();
        model
            .qa_logits(&batch, &mut ws, self.pipeline.executor())
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn bundled() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/minilm-l6-squad-int8")
    }

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(bundled().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    const AMAZON: &str = "The Amazon rainforest (Portuguese: Floresta Amazônica or Amazônia; Spanish: Selva Amazónica, Amazonía or usually Amazonia; French: Forêt amazonienne; Dutch: Amazoneregenwoud), also known in English as Amazonia or the Amazon Jungle, is a moist broadleaf forest that covers most of the Amazon basin of South America.";

    #[test]
    fn answers_like_the_native_pipeline_and_checks_the_manifest() {
        let (config, tokenizer, manifest) =
            (read("config.json"), read("tokenizer.json"), read("manifest.json"));
        let files = |weights: Vec<u8>, manifest: Option<&'static [u8]>| ModelBytes {
            config: Box::leak(config.clone().into_boxed_slice()),
            tokenizer: Box::leak(tokenizer.clone().into_boxed_slice()),
            weights_name: "model.int8.safetensors",
            weights,
            manifest,
        };
        let manifest: &'static [u8] = Box::leak(manifest.into_boxed_slice());
        let none = Digests::new();
        let model =
            BytesModel::load(files(read("model.int8.safetensors"), Some(manifest)), &none).expect("loads");
        let question = "Which name is also used to describe the Amazon rainforest in English?";
        let params = QaParams::default();
        let (got, windows) = model.answer(question, AMAZON, &params).expect("answers");
        let native = Pipeline::from_dir(
            &bundled(),
            PipelineOptions {
                threads: Some(1),
                ..Default::default()
            },
        )
        .expect("native loads");
        assert_eq!(
            got,
            native.answer(question, AMAZON, &params).expect("native answers")
        );
        assert_eq!(windows, 1);
        assert_eq!(model.info().precision, "int8-static");
        assert_eq!(
            model.logits(question, AMAZON, &params).expect("logits"),
            native
                .window_logits(question, AMAZON, &params)
                .expect("native logits")
                .concatenated()
        );

        let mut tampered = read("model.int8.safetensors");
        tampered[1000] ^= 1;
        let err = BytesModel::load(files(tampered, Some(manifest)), &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.int8.safetensors"), "{err}");
        let err = BytesModel::load(files(read("model.int8.safetensors"), None), &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("manifest.json"), "{err}");
        // Digests computed by the host stand in for hashing, and are checked the same way,
        // before building (`load`) or after (`build_unchecked` then `verify`).
        let digest = crate::manifest::sha256_hex(&read("model.int8.safetensors"));
        let digests = |pairs: &[(&str, &str)]| -> Digests {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let given = digests(&[("model.int8.safetensors", &digest.to_uppercase())]);
        let by_digest = BytesModel::load(files(read("model.int8.safetensors"), Some(manifest)), &given)
            .expect("loads with the host's digest");
        let checked_after =
            BytesModel::build_unchecked(files(read("model.int8.safetensors"), Some(manifest)))
                .expect("builds")
                .verify(&given)
                .expect("verifies with the host's digest");
        for loaded in [&by_digest, &checked_after] {
            assert_eq!(
                loaded.logits(question, AMAZON, &params).expect("logits"),
                model.logits(question, AMAZON, &params).expect("logits")
            );
        }
        let mut flipped = digest.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).expect("hex");
        let mut short = read("model.int8.safetensors");
        short.pop();
        let mut altered = read("model.int8.safetensors");
        let last = altered.len() - 1;
        altered[last] ^= 0x40; // inside tensor data: still parses
        let fp32_named = || ModelBytes {
            weights_name: "model.safetensors",
            ..files(read("model.int8.safetensors"), None)
        };
        type Case<'t> = (
            Box<dyn Fn() -> ModelBytes<'static> + 't>,
            Digests,
            [&'static str; 2],
        );
        let refused: Vec<Case<'_>> = vec![
            (
                Box::new(|| files(read("model.int8.safetensors"), Some(manifest))),
                digests(&[("model.int8.safetensors", &flipped)]),
                ["model.int8.safetensors", "does not match"],
            ),
            (
                Box::new(|| files(altered.clone(), Some(manifest))),
                none.clone(),
                ["model.int8.safetensors", "does not match"],
            ),
            (
                Box::new(|| files(short.clone(), Some(manifest))),
                digests(&[("model.int8.safetensors", &digest)]),
                ["bytes", "truncated"],
            ),
            (
                Box::new(|| files(read("model.int8.safetensors"), Some(manifest))),
                digests(&[("vocab.txt", &digest)]),
                ["vocab.txt", "not one of the files"],
            ),
            (
                Box::new(fp32_named),
                digests(&[("config.json", &digest)]),
                ["manifest.json", "no manifest to check them against"],
            ),
        ];
        for (bytes, given, wanted) in &refused {
            let before = BytesModel::load(bytes(), given).unwrap_err().to_string();
            let after = BytesModel::build_unchecked(bytes())
                .and_then(|unchecked| unchecked.verify(given))
                .unwrap_err()
                .to_string();
            for err in [before, after] {
                assert!(wanted.iter().all(|w| err.contains(w)), "{err}");
            }
        }

        let mut wrong_name = files(read("model.int8.safetensors"), Some(manifest));
        wrong_name.weights_name = "weights.bin";
        let err = BytesModel::load(wrong_name, &none).unwrap_err().to_string();
        assert!(err.contains("weights.bin"), "{err}");
        let err = model.answer("", AMAZON, &params).unwrap_err().to_string();
        assert!(err.to_lowercase().contains("question"), "{err}");
        assert!(model.forward(0).is_err());
        model.forward(16).expect("forward");
    }
}
