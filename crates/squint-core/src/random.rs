//! Deterministic random BERT weights of a given shape, for benchmarks and tests: no checkpoint
//! of that size can be downloaded here, and speed does not depend on the values.

use crate::artifact::{load_int8_bytes, write_int8, Int8Metadata, Recipe};
use crate::bert::Bert;
use crate::calibrate::{Calibrator, Observer};
use crate::config::BertConfig;
use crate::error::Result;
use crate::exec::Executor;
use crate::linear::Precision;
use crate::quant::{Role, WeightBits};
use crate::weights::{InMemorySource, Tensor, WeightReader};

/// SplitMix64: tiny, seedable, good enough for weights and reproducible sampling.
#[derive(Debug)]
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-a, a].
    fn uniform(&mut self, a: f32) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
    }
}

/// All tensors of a `BertForQuestionAnswering` of `config`'s shape, with weights uniform in
/// ±0.0346 (standard deviation 0.02, BERT's initializer range), LayerNorm at identity.
pub fn random_weights(config: &BertConfig, seed: u64) -> InMemorySource {
    let mut rng = SplitMix(seed);
    let mut src = InMemorySource::new("random weights");
    let mut put = |name: String, shape: Vec<usize>, init: Init| {
        let n = shape.iter().product();
        let data = match init {
            Init::Random => (0..n).map(|_| rng.uniform(0.0346)).collect(),
            Init::Ones => vec![1.0; n],
            Init::Zeros => vec![0.0; n],
        };
        src.insert(name, Tensor { shape, data });
    };
    let (h, i) = (config.hidden_size, config.intermediate_size);
    let embeddings = [
        ("word", config.vocab_size),
        ("position", config.max_position_embeddings),
        ("token_type", config.type_vocab_size),
    ];
    for (table, rows) in embeddings {
        put(
            format!("bert.embeddings.{table}_embeddings.weight"),
            vec![rows, h],
            Init::Random,
        );
    }
    let mut norms = vec!["bert.embeddings.LayerNorm".to_string()];
    for l in 0..config.num_hidden_layers {
        let p = format!("bert.encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", i, h),
            ("output.dense", h, i),
        ] {
            put(format!("{p}.{name}.weight"), vec![out, inp], Init::Random);
            put(format!("{p}.{name}.bias"), vec![out], Init::Random);
        }
        norms.push(format!("{p}.attention.output.LayerNorm"));
        norms.push(format!("{p}.output.LayerNorm"));
    }
    for norm in norms {
        put(format!("{norm}.weight"), vec![h], Init::Ones);
        put(format!("{norm}.bias"), vec![h], Init::Zeros);
    }
    put("qa_outputs.weight".into(), vec![2, h], Init::Random);
    put("qa_outputs.bias".into(), vec![2], Init::Zeros);
    src
}

/// A random-weight encoder at `precision`. The static recipe calibrates (MinMax) on two
/// random windows of 128 tokens and keeps FFN-in per token, as `squint quantize` does.
pub fn random_model(config: &BertConfig, seed: u64, precision: Precision) -> Result<Bert> {
    random_model_with(config, seed, precision, WeightBits::Eight)
}

/// [`random_model`] with INT8 weights on the grid `weight_bits` (FP32 ignores it).
pub fn random_model_with(
    config: &BertConfig,
    seed: u64,
    precision: Precision,
    weight_bits: WeightBits,
) -> Result<Bert> {
    let source = random_weights(config, seed);
    let reader = WeightReader::new(&source);
    let fp32 = Bert::load(config, &reader)?;
    let (recipe, per_token) = match precision {
        Precision::Fp32 => return Ok(fp32),
        Precision::Int8Dynamic => (Recipe::Dynamic, Role::ALL.into_iter().collect()),
        Precision::Int8Static => (Recipe::Static, crate::quantize::default_per_token()),
    };
    let ranges = if recipe == Recipe::Static {
        let exec = Executor::new(None)?;
        let mut calibrator = Calibrator::new(&fp32, &exec, Observer::MinMax)?;
        let mut rng = SplitMix(seed ^ 0x5eed);
        let len = 128.min(config.max_position_embeddings);
        for _ in 0..2 {
            let ids: Vec<u32> = (0..len)
                .map(|_| (rng.next() % config.vocab_size as u64) as u32)
                .collect();
            calibrator.add_window(&ids, &vec![0; len])?;
        }
        Some(calibrator.finish()?)
    } else {
        None
    };
    let meta = Int8Metadata {
        recipe,
        per_token,
        calibration: ranges.as_ref().map(|_| crate::artifact::CalibrationInfo {
            data: "random token ids".into(),
            data_sha256: "none".into(),
            samples: 2,
            features: 2,
            seed,
            observer: Observer::MinMax.name(),
        }),
        attention: squint_kernels::attention::Numerics::Int16,
        weight_bits,
        source_file: "random weights".into(),
        source_sha256: None,
    };
    load_int8_bytes(config, write_int8(config, &reader, &meta, ranges.as_ref())?)
}

/// How a random-model tensor is filled.
#[derive(Clone, Copy, Debug)]
enum Init {
    Random,
    Ones,
    Zeros,
}
