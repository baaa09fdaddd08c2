//! The INT8 artifact, `model.int8.safetensors`: quantized weights in a kernel-independent
//! layout, their scales, calibrated activation ranges and the recipe, in one safetensors file.
//!
//! Tensors (names without the `bert.` prefix):
//! - `embeddings.word_embeddings.weight` I8 `[vocab, h]` + `.scale` F32 `[vocab]` (symmetric per row);
//!   position and token-type embeddings, every LayerNorm and `qa_outputs.*` stay F32;
//! - per linear layer `encoder.layer.N.{attention.self.qkv, attention.output.dense,
//!   intermediate.dense, output.dense}`: `.weight` I8 `[out, in]` row-major (PyTorch's layout;
//!   packing for the kernels happens at load), `.weight_scale` F32 `[out]` (symmetric per output
//!   channel), `.bias` F32 `[out]`, and for statically quantized inputs `.input_scale` F32 `[1]`
//!   and `.input_zero_point` U8 `[1]`. `qkv` is query, key and value stacked, `[3h, h]`.
//!
//! `__metadata__` holds the format name and version, the recipe, which inputs stay per token,
//! how attention computes (`attention`: `int16`, `int8` or `f32`, absent in older files: `f32`),
//! the linear layers' weight grid (`weight_bits`: `8` or `7`, absent in older files: `8`),
//! calibration provenance and the source checkpoint's sha256. Loading checks all of it and
//! refuses a file with missing, extra or ill-shaped tensors.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use safetensors::Dtype;
use squint_kernels::attention::Numerics;
use squint_kernels::int8::RowQuant;

use crate::bert::{fp32_linear, ParamSource, WordEmbeddings};
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::linear::{Linear, Precision};
use crate::quant::{quantize_rows_symmetric, InputQuant, Role, Site, WeightBits};
use crate::weights::{SafetensorsSource, TensorSource, WeightReader};

/// The artifact's file name inside a model directory.
pub const INT8_FILE: &str = "model.int8.safetensors";
/// `__metadata__["format"]`.
pub const FORMAT: &str = "squint-int8";
/// `__metadata__["format_version"]`: bumped whenever a reader of the old version would
/// misread the new one.
pub const FORMAT_VERSION: u32 = 1;

/// How activations are quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// Per token at run time; no calibration.
    Dynamic,
    /// Calibrated per-tensor ranges, except the roles listed in [`Int8Metadata::per_token`].
    Static,
}

impl Recipe {
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Dynamic => "dynamic",
            Recipe::Static => "static",
        }
    }

    pub fn parse(name: &str) -> Option<Recipe> {
        match name {
            "dynamic" => Some(Recipe::Dynamic),
            "static" => Some(Recipe::Static),
            _ => None,
        }
    }

    pub fn precision(self) -> Precision {
        match self {
            Recipe::Dynamic => Precision::Int8Dynamic,
            Recipe::Static => Precision::Int8Static,
        }
    }
}

/// Where the calibration ranges came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalibrationInfo {
    /// The data file's name (no directories).
    pub data: String,
    pub data_sha256: String,
    /// Questions drawn (shuffled with `seed`), and the windows they made.
    pub samples: usize,
    pub features: usize,
    pub seed: u64,
    /// `minmax` or `percentile-P`.
    pub observer: String,
}

/// Everything `__metadata__` says about an artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Int8Metadata {
    pub recipe: Recipe,
    /// Roles whose inputs stay quantized per token (all of them in the dynamic recipe).
    pub per_token: BTreeSet<Role>,
    pub calibration: Option<CalibrationInfo>,
    /// How attention's two products are computed (`attention`; artifacts without it: f32).
    pub attention: Numerics,
    /// The linear layers' weight grid (`weight_bits`; artifacts without it: 8).
    pub weight_bits: WeightBits,
    /// The FP32 checkpoint's file name and sha256 (None when quantized in memory at load).
    pub source_file: String,
    pub source_sha256: Option<String>,
}

const LAYOUT: &str = "weights int8 row-major [out_features, in_features], symmetric per output channel \
(scale = max|w|/Q, values in [-Q, Q], Q = 127, or 63 when weight_bits is 7); attention.self.qkv = query, \
key, value rows stacked; word embeddings int8 symmetric per row in [-127, 127]; activations u8 affine, \
per token unless the layer has input_scale";
/// `float_parts` for each attention choice.
fn float_parts(attention: Numerics) -> &'static str {
    match attention {
        Numerics::F32 => {
            "position and token-type embeddings, LayerNorm, attention (QK^T, softmax, PV), \
GELU, residual adds, qa_outputs"
        }
        Numerics::Int16 => {
            "position and token-type embeddings, LayerNorm, softmax, GELU, residual adds, \
qa_outputs; attention's QK^T and PV are exact int16 products (Q, K per row, V per column, \
probabilities as round(p*32767))"
        }
        Numerics::Int8 => {
            "position and token-type embeddings, LayerNorm, softmax, GELU, residual adds, \
qa_outputs; attention's QK^T and PV run on the int8 GEMM (Q and probabilities u8 per row, K s8 \
per row, V s8 per column)"
        }
    }
}

impl Int8Metadata {
    /// The dynamic recipe's metadata: every input per token, no calibration.
    pub fn dynamic(source_file: &str, source_sha256: Option<String>, attention: Numerics) -> Int8Metadata {
        Int8Metadata {
            recipe: Recipe::Dynamic,
            per_token: Role::ALL.into_iter().collect(),
            calibration: None,
            attention,
            weight_bits: WeightBits::Eight,
            source_file: source_file.to_string(),
            source_sha256,
        }
    }

    fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put("format", FORMAT.into());
        put("format_version", FORMAT_VERSION.to_string());
        put("recipe", self.recipe.name().into());
        put(
            "per_token_inputs",
            self.per_token
                .iter()
                .map(|r| r.name())
                .collect::<Vec<_>>()
                .join(","),
        );
        put("weight_layout", LAYOUT.into());
        put("float_parts", float_parts(self.attention).into());
        put("attention", self.attention.name().into());
        put("weight_bits", self.weight_bits.name().into());
        put("source_file", self.source_file.clone());
        put(
            "source_sha256",
            self.source_sha256.clone().unwrap_or_else(|| "none".into()),
        );
        put("squint_version", env!("CARGO_PKG_VERSION").into());
        if let Some(c) = &self.calibration {
            put("calibration_data", c.data.clone());
            put("calibration_data_sha256", c.data_sha256.clone());
            put("calibration_samples", c.samples.to_string());
            put("calibration_features", c.features.to_string());
            put("calibration_seed", c.seed.to_string());
            put("calibration_observer", c.observer.clone());
        }
        m
    }

    /// Reads and checks `__metadata__`; `None` when the file is not a squint INT8 artifact.
    pub fn from_map(file: &str, m: &HashMap<String, String>) -> Result<Option<Int8Metadata>> {
        match m.get("format") {
            Some(f) if f == FORMAT => {}
            _ => return Ok(None),
        }
        let bad = |message: String| Error::Checkpoint {
            file: file.to_string(),
            message,
        };
        let get = |k: &str| {
            m.get(k)
                .map(String::as_str)
                .ok_or_else(|| bad(format!("__metadata__ lacks `{k}`")))
        };
        let version = get("format_version")?;
        if version != FORMAT_VERSION.to_string() {
            return Err(bad(format!(
                "{FORMAT} format version {version} is not supported (this squint reads version {FORMAT_VERSION}); re-run `squint quantize`"
            )));
        }
        let recipe_name = get("recipe")?;
        let recipe = Recipe::parse(recipe_name)
            .ok_or_else(|| bad(format!("unknown recipe {recipe_name:?} (static, dynamic)")))?;
        let mut per_token = BTreeSet::new();
        for name in get("per_token_inputs")?.split(',').filter(|s| !s.is_empty()) {
            per_token.insert(
                Role::parse(name)
                    .ok_or_else(|| bad(format!("unknown layer role {name:?} in per_token_inputs")))?,
            );
        }
        if recipe == Recipe::Dynamic && per_token.len() != Role::ALL.len() {
            return Err(bad(
                "a dynamic artifact must list every role in per_token_inputs".into()
            ));
        }
        let number =
            |k: &str| -> Result<u64> { get(k)?.parse().map_err(|_| bad(format!("`{k}` is not a number"))) };
        let calibration = if recipe == Recipe::Static {
            Some(CalibrationInfo {
                data: get("calibration_data")?.to_string(),
                data_sha256: get("calibration_data_sha256")?.to_string(),
                samples: number("calibration_samples")? as usize,
                features: number("calibration_features")? as usize,
                seed: number("calibration_seed")?,
                observer: get("calibration_observer")?.to_string(),
            })
        } else {
            None
        };
        // Written since attention could be integer; older artifacts keep f32 attention.
        let attention = match m.get("attention") {
            None => Numerics::F32,
            Some(name) => Numerics::parse(name)
                .ok_or_else(|| bad(format!("unknown attention {name:?} (f32, int16, int8)")))?,
        };
        // Written since weights could be 7-bit; older artifacts hold 8-bit weights.
        let weight_bits = match m.get("weight_bits") {
            None => WeightBits::Eight,
            Some(name) => {
                WeightBits::parse(name).ok_or_else(|| bad(format!("unknown weight_bits {name:?} (8, 7)")))?
            }
        };
        let source_sha256 = match get("source_sha256")? {
            "none" => None,
            s => Some(s.to_string()),
        };
        Ok(Some(Int8Metadata {
            recipe,
            per_token,
            calibration,
            attention,
            weight_bits,
            source_file: get("source_file")?.to_string(),
            source_sha256,
        }))
    }
}

/// Calibrated input ranges, `[lo, hi]` per linear layer.
pub type Ranges = std::collections::BTreeMap<Site, (f32, f32)>;

/// Quantizes an FP32 checkpoint into the artifact's bytes. `ranges` must cover every site
/// whose role is not in `meta.per_token` when the recipe is static.
pub fn write_int8(
    config: &BertConfig,
    r: &WeightReader<'_>,
    meta: &Int8Metadata,
    ranges: Option<&Ranges>,
) -> Result<Vec<u8>> {
    let (h, vocab) = (config.hidden_size, config.vocab_size);
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let i8_bytes = |v: &[i8]| v.iter().map(|&x| x as u8).collect::<Vec<u8>>();
    let put_f32 = |tensors: &mut Vec<_>, name: &str, shape: Vec<usize>| -> Result<()> {
        let v = r.get(name, &shape)?;
        tensors.push((name.to_string(), Dtype::F32, shape, f32_bytes(&v)));
        Ok(())
    };
    let word = r.get("embeddings.word_embeddings.weight", &[vocab, h])?;
    let (q, scales) = quantize_rows_symmetric(&word, h, WeightBits::Eight.qmax());
    tensors.push((
        "embeddings.word_embeddings.weight".into(),
        Dtype::I8,
        vec![vocab, h],
        i8_bytes(&q),
    ));
    tensors.push((
        "embeddings.word_embeddings.scale".into(),
        Dtype::F32,
        vec![vocab],
        f32_bytes(&scales),
    ));
    put_f32(
        &mut tensors,
        "embeddings.position_embeddings.weight",
        vec![config.max_position_embeddings, h],
    )?;
    put_f32(
        &mut tensors,
        "embeddings.token_type_embeddings.weight",
        vec![config.type_vocab_size, h],
    )?;
    let mut norms = vec!["embeddings.LayerNorm".to_string()];
    for layer in 0..config.num_hidden_layers {
        for role in Role::ALL {
            let site = Site { layer, role };
            let (out, inp) = linear_shape(config, role);
            let (w, bias) = fp32_linear(r, site, out, inp)?;
            let (q, scales) = quantize_rows_symmetric(&w, inp, meta.weight_bits.qmax());
            let p = site.prefix();
            tensors.push((format!("{p}.weight"), Dtype::I8, vec![out, inp], i8_bytes(&q)));
            tensors.push((
                format!("{p}.weight_scale"),
                Dtype::F32,
                vec![out],
                f32_bytes(&scales),
            ));
            tensors.push((format!("{p}.bias"), Dtype::F32, vec![out], f32_bytes(&bias)));
            if meta.recipe == Recipe::Static && !meta.per_token.contains(&role) {
                let &(lo, hi) = ranges
                    .and_then(|r| r.get(&site))
                    .ok_or_else(|| Error::Checkpoint {
                        file: INT8_FILE.into(),
                        message: format!("no calibrated range for {p}"),
                    })?;
                let q = RowQuant::of(&[lo, hi]);
                tensors.push((
                    format!("{p}.input_scale"),
                    Dtype::F32,
                    vec![1],
                    f32_bytes(&[q.scale]),
                ));
                tensors.push((
                    format!("{p}.input_zero_point"),
                    Dtype::U8,
                    vec![1],
                    vec![q.zero as u8],
                ));
            }
        }
        norms.push(format!("encoder.layer.{layer}.attention.output.LayerNorm"));
        norms.push(format!("encoder.layer.{layer}.output.LayerNorm"));
    }
    for norm in norms {
        put_f32(&mut tensors, &format!("{norm}.weight"), vec![h])?;
        put_f32(&mut tensors, &format!("{norm}.bias"), vec![h])?;
    }
    if r.has("qa_outputs.weight") {
        put_f32(&mut tensors, "qa_outputs.weight", vec![2, h])?;
        put_f32(&mut tensors, "qa_outputs.bias", vec![2])?;
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::tensor(INT8_FILE, name, e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(meta.to_map())).map_err(|e| Error::Checkpoint {
        file: INT8_FILE.into(),
        message: format!("serializing: {e}"),
    })?;
    canonical_header(bytes)
}

/// Rewrites the safetensors header with its JSON keys sorted (the same bytes, so the same
/// sha256, for the same model and recipe: safetensors writes `__metadata__` in hash order).
/// The header keeps its length, padded with spaces as the format allows.
fn canonical_header(mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    let broken = |message: String| Error::Checkpoint {
        file: INT8_FILE.into(),
        message,
    };
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| broken("serialized file has no header".into()))?;
    let len = usize::try_from(u64::from_le_bytes(len_bytes))
        .ok()
        .filter(|&n| 8 + n <= bytes.len())
        .ok_or_else(|| broken("serialized header length is out of range".into()))?;
    // serde_json's default map is a BTreeMap: parsing and printing sorts every object's keys.
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len])
        .map_err(|e| broken(format!("serialized header is not JSON: {e}")))?;
    let sorted = header.to_string().into_bytes();
    if sorted.len() > len {
        return Err(broken("sorted header is longer than the original".into()));
    }
    bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    bytes[8 + sorted.len()..8 + len].fill(b' ');
    Ok(bytes)
}

/// Builds the encoder from artifact bytes made in memory (quantization at load, benchmarks).
pub fn load_int8_bytes(config: &BertConfig, bytes: Vec<u8>) -> Result<crate::bert::Bert> {
    let source = SafetensorsSource::new(INT8_FILE, bytes)?;
    let artifact = Int8Artifact::open(&source)?.ok_or_else(|| Error::Checkpoint {
        file: INT8_FILE.into(),
        message: "lacks the squint-int8 metadata".into(),
    })?;
    artifact.load(config)
}

/// `(out_features, in_features)` of a role's layer.
pub fn linear_shape(config: &BertConfig, role: Role) -> (usize, usize) {
    let (h, inter) = (config.hidden_size, config.intermediate_size);
    match role {
        Role::Qkv => (3 * h, h),
        Role::AttentionOutput => (h, h),
        Role::Intermediate => (inter, h),
        Role::Output => (h, inter),
    }
}

/// An INT8 artifact opened for loading: every read checks dtype, shape and finiteness, and
/// [`Int8Artifact::finish`] refuses tensors nobody asked for.
#[derive(Debug)]
pub struct Int8Artifact<'a, B: AsRef<[u8]>> {
    src: &'a SafetensorsSource<B>,
    meta: Int8Metadata,
    read: RefCell<BTreeSet<String>>,
}

impl<'a, B: AsRef<[u8]>> Int8Artifact<'a, B> {
    /// `None` when `src` is not a squint INT8 artifact (an FP32 checkpoint).
    pub fn open(src: &'a SafetensorsSource<B>) -> Result<Option<Self>> {
        Ok(
            Int8Metadata::from_map(src.file(), src.metadata())?.map(|meta| Int8Artifact {
                src,
                meta,
                read: RefCell::new(BTreeSet::new()),
            }),
        )
    }

    pub fn metadata(&self) -> &Int8Metadata {
        &self.meta
    }

    fn tensor(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<&'a [u8]> {
        let file = self.src.file();
        let (found, found_shape, bytes) = self
            .src
            .raw(name)
            .ok_or_else(|| Error::tensor(file, name, "missing"))?;
        if found != dtype || found_shape != shape {
            return Err(Error::tensor(
                file,
                name,
                format!("expected {dtype:?} {shape:?}, found {found:?} {found_shape:?}"),
            ));
        }
        self.read.borrow_mut().insert(name.to_string());
        Ok(bytes)
    }

    fn floats(&self, name: &str, shape: &[usize], positive: bool) -> Result<Vec<f32>> {
        let v: Vec<f32> = self
            .tensor(name, Dtype::F32, shape)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(bad) = v.iter().find(|x| !x.is_finite() || (positive && **x <= 0.0)) {
            let what = if positive {
                "positive finite values"
            } else {
                "finite values"
            };
            return Err(Error::tensor(
                self.src.file(),
                name,
                format!("expected {what}, found {bad}"),
            ));
        }
        Ok(v)
    }

    /// Int8 values checked to lie in `[-bits.qmax(), bits.qmax()]`.
    fn int8(&self, name: &str, shape: &[usize], bits: WeightBits) -> Result<&'a [i8]> {
        // In place: a bert-base artifact holds 85 MB of these, packed straight from the file.
        let v: &[i8] = bytemuck::cast_slice(self.tensor(name, Dtype::I8, shape)?);
        let qmax = bits.qmax();
        // A branch-free pass first (vectorised; the page loads ~20 MB of these), then the
        // offending value only when there is one.
        let (lo, hi) = v.iter().fold((0i8, 0i8), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        if lo < -qmax || hi > qmax {
            let bad = v
                .iter()
                .find(|x| x.unsigned_abs() > qmax.unsigned_abs())
                .map_or(lo, |x| *x);
            return Err(Error::tensor(
                self.src.file(),
                name,
                format!(
                    "holds {bad}: {}-bit weights are symmetric in [-{qmax}, {qmax}]",
                    bits.name()
                ),
            ));
        }
        Ok(v)
    }

    /// Builds the encoder, then checks that no tensor was left unread.
    pub fn load(&self, config: &BertConfig) -> Result<crate::bert::Bert> {
        let model = crate::bert::Bert::from_params(config, self)?;
        self.finish()?;
        Ok(model)
    }

    /// After loading: every tensor in the file must have been read.
    fn finish(&self) -> Result<()> {
        let read = self.read.borrow();
        let mut extra: Vec<&str> = self.src.names().filter(|n| !read.contains(*n)).collect();
        extra.sort_unstable();
        match extra.first() {
            None => Ok(()),
            Some(name) => Err(Error::tensor(
                self.src.file(),
                name,
                format!("unexpected in a {FORMAT} v{FORMAT_VERSION} artifact of this config ({} unexpected tensors)", extra.len()),
            )),
        }
    }
}

impl<B: AsRef<[u8]>> ParamSource for Int8Artifact<'_, B> {
    fn has(&self, name: &str) -> bool {
        self.src.raw(name).is_some()
    }

    fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.floats(name, shape, false)
    }

    fn word_embeddings(&self, vocab: usize, hidden: usize) -> Result<WordEmbeddings> {
        Ok(WordEmbeddings::Int8 {
            values: self
                .int8(
                    "embeddings.word_embeddings.weight",
                    &[vocab, hidden],
                    WeightBits::Eight,
                )?
                .to_vec(),
            scales: self.floats("embeddings.word_embeddings.scale", &[vocab], true)?,
        })
    }

    fn linear(&self, site: Site, out: usize, inp: usize) -> Result<Linear> {
        let p = site.prefix();
        let weight = self.int8(&format!("{p}.weight"), &[out, inp], self.meta.weight_bits)?;
        let scales = self.floats(&format!("{p}.weight_scale"), &[out], true)?;
        let bias = self.floats(&format!("{p}.bias"), &[out], false)?;
        let per_token = self.meta.per_token.contains(&site.role);
        let input = if per_token {
            InputQuant::PerToken
        } else {
            let scale = self.floats(&format!("{p}.input_scale"), &[1], true)?[0];
            let zero = self.tensor(&format!("{p}.input_zero_point"), Dtype::U8, &[1])?[0];
            InputQuant::Static(RowQuant {
                scale,
                zero: zero as i32,
            })
        };
        Ok(Linear::int8(weight, scales, bias, out, inp, input))
    }

    fn precision(&self) -> Precision {
        self.meta.recipe.precision()
    }

    fn attention(&self) -> Numerics {
        self.meta.attention
    }
}
