//! The question-answering pipeline: tokenize, window, encode in batches, decode. The same
//! object serves the CLI, the servers and the wasm builds.

use std::sync::Mutex;

use crate::artifact::{load_int8_bytes, write_int8, Int8Artifact, Int8Metadata};
use crate::bert::{Batch, Bert, ParamSource, Workspace};
use crate::config::BertConfig;
use crate::decode::{decode, Answer, WindowLogits};
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::files::{ModelFiles, WeightsFile};
use crate::linear::Precision;
use crate::params::QaParams;
use crate::tokenizer::QaTokenizer;
use crate::weights::{SafetensorsSource, TensorSource, WeightReader};
use crate::window::Windows;

/// How a pipeline runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipelineOptions {
    /// Threads for one forward pass (`None`: all cores).
    pub threads: Option<usize>,
    /// Windows encoded together in one forward pass.
    pub batch: usize,
    /// Arithmetic of the encoder's linear layers: `None` runs the model as stored (FP32
    /// checkpoint or INT8 artifact); `Some(Int8Dynamic)` quantizes an FP32 checkpoint at load.
    pub precision: Option<Precision>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            threads: None,
            batch: 4,
            precision: None,
        }
    }
}

/// Windows of one question with the start/end logits of each window.
#[derive(Clone, Debug)]
pub struct WindowedLogits {
    pub windows: Windows,
    /// `(start, end)` logits per window, one value per window token.
    pub logits: Vec<(Vec<f32>, Vec<f32>)>,
}

impl WindowedLogits {
    /// Every window's start then end logits, window after window: the layout cross-host parity
    /// checks compare (`squint logits`, the browser module, the edge guest).
    pub fn concatenated(&self) -> Vec<f32> {
        self.logits
            .iter()
            .flat_map(|(start, end)| start.iter().chain(end))
            .copied()
            .collect()
    }
}

/// A loaded model ready to answer questions.
#[derive(Debug)]
pub struct Pipeline {
    tokenizer: QaTokenizer,
    model: Bert,
    exec: Executor,
    workspace: Mutex<Workspace>,
    batch: usize,
}

/// Loads the encoder from a model directory's weights, as stored.
pub fn load_model(config: &BertConfig, weights: &WeightsFile) -> Result<Bert> {
    load_model_as(config, weights, None)
}

/// [`load_model`], checking or converting the precision: an INT8 artifact loads as its recipe
/// (asking for anything else is an error); an FP32 checkpoint loads as FP32, or is quantized
/// with the dynamic recipe in memory when `Int8Dynamic` is asked for (the static recipe needs
/// calibration: `squint quantize`).
pub fn load_model_as(
    config: &BertConfig,
    weights: &WeightsFile,
    precision: Option<Precision>,
) -> Result<Bert> {
    match weights {
        WeightsFile::Safetensors { name, bytes } => {
            let source = SafetensorsSource::new(name, bytes.as_ref())?;
            if let Some(artifact) = Int8Artifact::open(&source)? {
                let stored = artifact.precision();
                if precision.is_some_and(|p| p != stored) {
                    return Err(Error::Checkpoint {
                        file: name.clone(),
                        message: format!(
                            "is an INT8 artifact ({}); it cannot run as {}",
                            stored.name(),
                            precision.map_or("", Precision::name)
                        ),
                    });
                }
                return artifact.load(config);
            }
            from_checkpoint(config, &source, precision)
        }
        #[cfg(not(target_arch = "wasm32"))]
        WeightsFile::PyTorch(path) => {
            from_checkpoint(config, &crate::pytorch::read_pytorch(path)?, precision)
        }
    }
}

fn from_checkpoint(
    config: &BertConfig,
    source: &dyn TensorSource,
    precision: Option<Precision>,
) -> Result<Bert> {
    let reader = WeightReader::new(source);
    match precision.unwrap_or(Precision::Fp32) {
        Precision::Fp32 => Bert::load(config, &reader),
        Precision::Int8Dynamic => {
            let meta = Int8Metadata::dynamic(source.file(), None, squint_kernels::attention::Numerics::Int16);
            load_int8_bytes(config, write_int8(config, &reader, &meta, None)?)
        }
        Precision::Int8Static => Err(Error::Checkpoint {
            file: source.file().to_string(),
            message: "is an FP32 checkpoint: int8-static needs calibrated ranges; make an INT8 artifact with `squint quantize --recipe static`".into(),
        }),
    }
}

impl Pipeline {
    /// Builds a pipeline from a model directory's files.
    pub fn load(files: &ModelFiles, options: PipelineOptions) -> Result<Pipeline> {
        let config = BertConfig::from_json(&files.config, "config.json")?;
        let tokenizer = QaTokenizer::from_files(&files.tokenizer)?;
        let model = load_model_as(&config, &files.weights, options.precision)?;
        Self::new(tokenizer, model, options)
    }

    /// Reads and loads a model directory, built while its manifest's digests are checked
    /// ([`crate::UncheckedFiles::build_while_checking`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_dir(dir: &std::path::Path, options: PipelineOptions) -> Result<Pipeline> {
        ModelFiles::open_unchecked(dir)?.build_while_checking(|files| Self::load(files, options))
    }

    /// Puts a tokenizer and a model together, checking that they agree.
    pub fn new(tokenizer: QaTokenizer, model: Bert, options: PipelineOptions) -> Result<Pipeline> {
        if options.batch == 0 {
            return Err(Error::parameter("batch", "must be at least 1"));
        }
        let max_id = tokenizer.max_token_id();
        if max_id as usize >= model.config().vocab_size {
            return Err(Error::Tokenizer {
                file: "tokenizer".into(),
                message: format!(
                    "token id {max_id} does not fit the model's vocabulary of {} (config.json vocab_size)",
                    model.config().vocab_size
                ),
            });
        }
        Ok(Pipeline {
            tokenizer,
            model,
            exec: Executor::new(options.threads)?,
            workspace: Mutex::new(Workspace::default()),
            batch: options.batch,
        })
    }

    pub fn model(&self) -> &Bert {
        &self.model
    }

    pub fn tokenizer(&self) -> &QaTokenizer {
        &self.tokenizer
    }

    pub fn executor(&self) -> &Executor {
        &self.exec
    }

    /// Answers `question` from `context`: up to `top_k` answers, best first.
    pub fn answer(&self, question: &str, context: &str, params: &QaParams) -> Result<Vec<Answer>> {
        Ok(self.answer_counted(question, context, params)?.0)
    }

    /// [`Pipeline::answer`], and how many windows the context took (for logs and metrics).
    pub fn answer_counted(
        &self,
        question: &str,
        context: &str,
        params: &QaParams,
    ) -> Result<(Vec<Answer>, usize)> {
        let resolved = params.resolve(self.model.config().max_position_embeddings)?;
        let forward = self.window_logits(question, context, params)?;
        let logits: Vec<WindowLogits<'_>> = forward
            .logits
            .iter()
            .map(|(s, e)| WindowLogits { start: s, end: e })
            .collect();
        Ok((
            decode(&forward.windows, &logits, context, &resolved),
            logits.len(),
        ))
    }

    /// Tokenizes, windows and encodes; returns every window's logits (for oracles and tools).
    pub fn window_logits(&self, question: &str, context: &str, params: &QaParams) -> Result<WindowedLogits> {
        let mut all = self.window_logits_many(&[(question, context)], params)?;
        all.pop()
            .unwrap_or_else(|| Err(Error::Input("nothing to answer".into())))
    }

    /// [`Pipeline::window_logits`] for many questions at once: the windows of all of them,
    /// sorted by length, are encoded in batches of the pipeline's `batch` (padded to the
    /// longest, masked), so short questions share forward passes. The outer error is the model's; each question's own
    /// input error (empty, too long a question) stays with that question.
    pub fn window_logits_many(
        &self,
        items: &[(&str, &str)],
        params: &QaParams,
    ) -> Result<Vec<Result<WindowedLogits>>> {
        if !self.model.has_qa_head() {
            return Err(Error::NoQaHead);
        }
        let resolved = params.resolve(self.model.config().max_position_embeddings)?;
        let planned: Vec<Result<Windows>> = items
            .iter()
            .map(|(question, context)| Windows::plan(&self.tokenizer, question, context, &resolved))
            .collect();
        // (item, window) of every window to encode, sorted by length so that a batch pads
        // little (windows of one item keep their order).
        let mut jobs: Vec<(usize, usize, &Windows)> = planned
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().ok().map(|windows| (i, windows)))
            .flat_map(|(i, windows)| (0..windows.len()).map(move |w| (i, w, windows)))
            .collect();
        jobs.sort_by_key(|&(_, w, windows)| windows.seq_len(w));
        let mut logits: Vec<Vec<(Vec<f32>, Vec<f32>)>> = planned
            .iter()
            .map(|p| vec![(Vec::new(), Vec::new()); p.as_ref().map_or(0, |w| w.len())])
            .collect();
        let mut ws = self
            .workspace
            .lock()
            .map_err(|_| Error::Threads("workspace lock poisoned".into()))?;
        let pad = self.tokenizer.special().pad;
        for group in jobs.chunks(self.batch) {
            let seq_len = group
                .iter()
                .map(|&(_, w, windows)| windows.seq_len(w))
                .max()
                .unwrap_or(0);
            let mut ids = vec![pad; group.len() * seq_len];
            let mut types = vec![0u32; group.len() * seq_len];
            let mut lengths = Vec::with_capacity(group.len());
            for (row, &(_, w, windows)) in group.iter().enumerate() {
                let span = row * seq_len..(row + 1) * seq_len;
                windows.fill(w, &mut ids[span.clone()], &mut types[span]);
                lengths.push(windows.seq_len(w));
            }
            let batch = Batch {
                ids: &ids,
                types: &types,
                lengths: &lengths,
                seq_len,
            };
            let (start, end) = self.model.qa_logits(&batch, &mut ws, &self.exec)?;
            for (row, (&len, &(i, w, _))) in lengths.iter().zip(group).enumerate() {
                let span = row * seq_len..row * seq_len + len;
                logits[i][w] = (start[span.clone()].to_vec(), end[span].to_vec());
            }
        }
        Ok(planned
            .into_iter()
            .zip(logits)
            .map(|(windows, logits)| windows.map(|windows| WindowedLogits { windows, logits }))
            .collect())
    }
}
