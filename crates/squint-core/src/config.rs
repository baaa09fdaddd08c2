//! `config.json` of a Hugging Face BERT checkpoint, validated into [`BertConfig`].

use serde::Deserialize;

use crate::error::{Error, Result};

/// The activation of the feed-forward block (`hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: x·Φ(x) with the exact erf (BERT's default).
    GeluErf,
    /// `gelu_new`, `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    /// `relu`.
    Relu,
}

impl Activation {
    fn parse(name: &str) -> Option<Activation> {
        match name {
            "gelu" | "gelu_python" => Some(Activation::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }
}

/// The shape and numerics of a BERT encoder. Constructed only through validation, so every
/// instance has positive sizes and `hidden_size` divisible by `num_attention_heads`.
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub activation: Activation,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f32,
    pub pad_token_id: u32,
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    architectures: Option<Vec<String>>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    intermediate_size: Option<usize>,
    hidden_act: Option<serde_json::Value>,
    max_position_embeddings: Option<usize>,
    type_vocab_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    pad_token_id: Option<u32>,
    position_embedding_type: Option<String>,
}

/// Upper bounds that keep a hostile config from asking for absurd allocations.
const MAX_DIM: usize = 65_536;
const MAX_LAYERS: usize = 256;
const MAX_VOCAB: usize = 4_000_000;

impl BertConfig {
    /// Parses and validates `config.json`; `file` names it in errors.
    pub fn from_json(bytes: &[u8], file: &str) -> Result<BertConfig> {
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| Error::config(file, format!("not valid JSON: {e}")))?;
        let is_bert_arch = raw
            .architectures
            .as_ref()
            .is_some_and(|a| a.iter().any(|name| name.starts_with("Bert")));
        match raw.model_type.as_deref() {
            Some("bert") => {}
            Some(other) => {
                return Err(Error::config(
                    file,
                    format!("model_type is {other:?}; squint runs BERT models (\"bert\")"),
                ))
            }
            None if is_bert_arch => {}
            None => return Err(Error::config(file, "no model_type: not a BERT config")),
        }
        if let Some(kind) = raw.position_embedding_type.as_deref() {
            if kind != "absolute" {
                return Err(Error::config(
                    file,
                    format!("position_embedding_type {kind:?} is not supported (only \"absolute\")"),
                ));
            }
        }
        let need = |value: Option<usize>, name: &str, max: usize| -> Result<usize> {
            match value {
                None => Err(Error::config(file, format!("missing field `{name}`"))),
                Some(0) => Err(Error::config(file, format!("`{name}` must be positive"))),
                Some(v) if v > max => Err(Error::config(
                    file,
                    format!("`{name}` = {v} is larger than {max}"),
                )),
                Some(v) => Ok(v),
            }
        };
        let hidden_size = need(raw.hidden_size, "hidden_size", MAX_DIM)?;
        let num_attention_heads = need(raw.num_attention_heads, "num_attention_heads", MAX_DIM)?;
        if hidden_size % num_attention_heads != 0 {
            return Err(Error::config(
                file,
                format!(
                    "hidden_size {hidden_size} is not divisible by num_attention_heads {num_attention_heads}"
                ),
            ));
        }
        let activation = match &raw.hidden_act {
            None => Activation::GeluErf,
            Some(serde_json::Value::String(name)) => Activation::parse(name).ok_or_else(|| {
                Error::config(
                    file,
                    format!(
                        "unknown hidden_act {name:?} (supported: gelu, gelu_new, gelu_pytorch_tanh, relu)"
                    ),
                )
            })?,
            Some(other) => {
                return Err(Error::config(
                    file,
                    format!("hidden_act must be a string, got {other}"),
                ))
            }
        };
        let layer_norm_eps = raw.layer_norm_eps.unwrap_or(1e-12);
        if !(layer_norm_eps.is_finite() && layer_norm_eps > 0.0) {
            return Err(Error::config(
                file,
                format!("layer_norm_eps must be positive, got {layer_norm_eps}"),
            ));
        }
        Ok(BertConfig {
            vocab_size: need(raw.vocab_size, "vocab_size", MAX_VOCAB)?,
            hidden_size,
            num_hidden_layers: need(raw.num_hidden_layers, "num_hidden_layers", MAX_LAYERS)?,
            num_attention_heads,
            intermediate_size: need(raw.intermediate_size, "intermediate_size", MAX_DIM * 4)?,
            activation,
            max_position_embeddings: need(raw.max_position_embeddings, "max_position_embeddings", MAX_DIM)?,
            type_vocab_size: need(raw.type_vocab_size.or(Some(2)), "type_vocab_size", MAX_DIM)?,
            layer_norm_eps: layer_norm_eps as f32,
            pad_token_id: raw.pad_token_id.unwrap_or(0),
        })
    }

    /// A named standard shape (`bert-base`, `bert-large`, `minilm-l6`) for benchmarks.
    pub fn shape(name: &str) -> Option<BertConfig> {
        let (hidden, layers, heads, inter) = match name {
            "bert-base" => (768, 12, 12, 3072),
            "bert-large" => (1024, 24, 16, 4096),
            "minilm-l6" => (384, 6, 12, 1536),
            _ => return None,
        };
        Some(BertConfig {
            vocab_size: 30_522,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: inter,
            activation: Activation::GeluErf,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
        })
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"model_type":"bert","vocab_size":100,"hidden_size":32,"num_hidden_layers":2,
        "num_attention_heads":4,"intermediate_size":64,"hidden_act":"gelu","max_position_embeddings":128}"#;

    #[test]
    fn parses_minimal_config_with_defaults() {
        let c = BertConfig::from_json(GOOD.as_bytes(), "config.json").unwrap();
        assert_eq!(c.head_dim(), 8);
        assert_eq!(c.type_vocab_size, 2);
        assert_eq!(c.activation, Activation::GeluErf);
        assert!((c.layer_norm_eps - 1e-12).abs() < 1e-15);
    }

    fn error_of(json: &str) -> String {
        BertConfig::from_json(json.as_bytes(), "config.json")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn rejects_bad_configs_with_named_fields() {
        assert!(error_of("{").contains("not valid JSON"));
        assert!(error_of(&GOOD.replace("\"bert\"", "\"gpt2\"")).contains("gpt2"));
        assert!(error_of(&GOOD.replace("\"gelu\"", "\"swish\"")).contains("unknown hidden_act \"swish\""));
        assert!(
            error_of(&GOOD.replace("\"num_attention_heads\":4", "\"num_attention_heads\":5"))
                .contains("not divisible")
        );
        assert!(error_of(&GOOD.replace("\"hidden_size\":32,", "")).contains("missing field `hidden_size`"));
        assert!(
            error_of(&GOOD.replace("\"vocab_size\":100", "\"vocab_size\":0")).contains("must be positive")
        );
        let relative = GOOD.replace("}", ",\"position_embedding_type\":\"relative_key\"}");
        assert!(error_of(&relative).contains("relative_key"));
        let err = error_of(&GOOD.replace("\"model_type\":\"bert\",", ""));
        assert!(err.starts_with("config.json: "), "{err}");
    }

    #[test]
    fn named_shapes() {
        assert_eq!(BertConfig::shape("bert-base").map(|c| c.hidden_size), Some(768));
        assert!(BertConfig::shape("gpt").is_none());
    }
}
