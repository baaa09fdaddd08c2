//! `squint quantize` as a library call: an FP32 model directory in, the files of an INT8
//! model directory out (`config.json`, `tokenizer.json`, `model.int8.safetensors`,
//! `manifest.json`).

use std::collections::BTreeSet;

use squint_kernels::attention::Numerics;

use crate::artifact::{write_int8, CalibrationInfo, Int8Metadata, Recipe, INT8_FILE};
use crate::calibrate::{Calibrator, Observer};
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::files::{ModelFiles, TokenizerFiles, WeightsFile};
use crate::manifest::{sha256_hex, Manifest, MANIFEST_FILE};
use crate::quant::{Role, WeightBits};
use crate::squad::{sample_indices, Question};
use crate::tokenizer::QaTokenizer;
use crate::weights::{SafetensorsSource, TensorSource, WeightReader};

/// Calibration questions for the static recipe.
#[derive(Debug)]
pub struct CalibrationData<'a> {
    /// File name recorded in the metadata (no directories).
    pub name: String,
    /// The whole data file, hashed into the metadata.
    pub bytes: &'a [u8],
    pub questions: &'a [Question],
    pub samples: usize,
    pub seed: u64,
    pub observer: Observer,
}

/// What to make.
#[derive(Debug)]
pub struct QuantizeOptions<'a> {
    pub recipe: Recipe,
    /// Static recipe: roles whose inputs stay quantized per token (measured to need it).
    pub per_token: BTreeSet<Role>,
    /// Required for the static recipe.
    pub calibration: Option<CalibrationData<'a>>,
    /// Threads for calibration (`None`: all cores).
    pub threads: Option<usize>,
    /// Attention's products: [`Numerics::Int16`] unless told otherwise (see its EM/F1 in
    /// models/README.md).
    pub attention: Numerics,
    /// The linear layers' weight grid: 8 bits unless told (7 bits double AVX2's INT8 speed).
    pub weight_bits: WeightBits,
}

/// The static recipe's default: the FFN's two inputs stay per token (FFN-in reads LayerNorm
/// output with a few outlier channels; FFN-out reads the GELU output's long tail), Q/K/V and
/// the attention output are static. Measured on minilm-l6-squad, 200 dev questions, answers
/// equal to FP32: all static 181, FFN-in per token 187, both FFN inputs per token 198;
/// percentile observers (99.9–99.999) clip the outliers and do worse (142–176).
pub fn default_per_token() -> BTreeSet<Role> {
    [Role::Intermediate, Role::Output].into_iter().collect()
}

/// Quantizes `files` (an FP32 checkpoint). `progress(done, total)` is called after each
/// calibration question. Returns `(file name, bytes)` for the output directory, manifest last.
pub fn quantize_model(
    files: &ModelFiles,
    options: &QuantizeOptions<'_>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<(String, Vec<u8>)>> {
    let config = BertConfig::from_json(&files.config, "config.json")?;
    let tokenizer = QaTokenizer::from_files(&files.tokenizer)?;
    let tokenizer_json = match &files.tokenizer {
        TokenizerFiles::Json(bytes) => bytes.clone(),
        TokenizerFiles::Vocab { .. } => tokenizer.to_json()?,
    };
    let (owned_source, source_sha256): (Box<dyn TensorSource + '_>, String) = match &files.weights {
        WeightsFile::Safetensors { name, bytes } => {
            let source = SafetensorsSource::new(name, bytes.as_ref())?;
            if crate::artifact::Int8Artifact::open(&source)?.is_some() {
                return Err(Error::Checkpoint {
                    file: name.clone(),
                    message: "is already an INT8 artifact: quantize the FP32 checkpoint".into(),
                });
            }
            (Box::new(source), sha256_hex(bytes.as_ref()))
        }
        #[cfg(not(target_arch = "wasm32"))]
        WeightsFile::PyTorch(path) => {
            let bytes = std::fs::read(path).map_err(|e| Error::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            (Box::new(crate::pytorch::read_pytorch(path)?), sha256_hex(&bytes))
        }
    };
    let source: &dyn TensorSource = owned_source.as_ref();
    let reader = WeightReader::new(source);
    let (meta, ranges) = match options.recipe {
        Recipe::Dynamic => (
            Int8Metadata {
                weight_bits: options.weight_bits,
                ..Int8Metadata::dynamic(source.file(), Some(source_sha256), options.attention)
            },
            None,
        ),
        Recipe::Static => {
            let data = options.calibration.as_ref().ok_or_else(|| {
                Error::parameter("calib", "the static recipe needs calibration data (--calib FILE)")
            })?;
            if data.samples == 0 {
                return Err(Error::parameter("samples", "must be at least 1"));
            }
            let model = crate::bert::Bert::load(&config, &reader)?;
            let exec = Executor::new(options.threads)?;
            let mut calibrator = Calibrator::new(&model, &exec, data.observer)?;
            let picks = sample_indices(data.questions.len(), data.samples, data.seed);
            for (done, &i) in picks.iter().enumerate() {
                let q = &data.questions[i];
                calibrator.add_question(&tokenizer, &q.question, &q.context)?;
                progress(done + 1, picks.len());
            }
            let features = calibrator.features();
            let ranges = calibrator.finish()?;
            (
                Int8Metadata {
                    recipe: Recipe::Static,
                    per_token: options.per_token.clone(),
                    calibration: Some(CalibrationInfo {
                        data: data.name.clone(),
                        data_sha256: sha256_hex(data.bytes),
                        samples: picks.len(),
                        features,
                        seed: data.seed,
                        observer: data.observer.name(),
                    }),
                    attention: options.attention,
                    weight_bits: options.weight_bits,
                    source_file: source.file().to_string(),
                    source_sha256: Some(source_sha256),
                },
                Some(ranges),
            )
        }
    };
    let artifact = write_int8(&config, &reader, &meta, ranges.as_ref())?;
    let mut out = vec![
        ("config.json".to_string(), files.config.clone()),
        ("tokenizer.json".to_string(), tokenizer_json),
        (INT8_FILE.to_string(), artifact),
    ];
    let manifest = Manifest::of(out.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    out.push((MANIFEST_FILE.to_string(), manifest.to_json().into_bytes()));
    Ok(out)
}

/// Writes a model directory's files into `dir` (created if needed): each file goes to a
/// temporary name first and is renamed into place, the manifest last.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_dir(dir: &std::path::Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    let io = |path: &std::path::Path, e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for (name, bytes) in files {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.partial"));
        std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    }
    Ok(())
}
