//! WordPiece tokenization for QA: questions to ids, contexts to ids with character offsets and
//! word indices, via the Hugging Face `tokenizers` crate. Truncation and padding stored in a
//! `tokenizer.json` are switched off: squint makes its own windows.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{
    AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    Tokenizer, TokenizerBuilder,
};

use crate::error::{Error, Result};
use crate::files::TokenizerFiles;

/// A tokenized context: one entry per token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextTokens {
    pub ids: Vec<u32>,
    /// `[start, end)` character offsets of each token in the context.
    pub offsets: Vec<(usize, usize)>,
    /// The pre-tokenizer word each token belongs to (for aligning answers to whole words).
    pub words: Vec<Option<u32>>,
}

/// The special tokens a BERT QA window needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    pub cls: u32,
    pub sep: u32,
    pub pad: u32,
}

/// The tokenizer of a BERT QA model.
#[derive(Clone, Debug)]
pub struct QaTokenizer {
    inner: Tokenizer,
    special: SpecialTokens,
    /// The largest id the tokenizer can produce, found while building it (asking `tokenizers`
    /// afterwards copies the whole vocabulary).
    max_id: u32,
    file: String,
}

/// The parts of a `tokenizer.json`, with the model as `M`. `tokenizers`' own reader buffers the
/// model (the 30k-entry vocabulary) twice before building it: about half of a page's model load.
/// Read once with `M` = [`WordPieceJson`] (every BERT), else with the model kept raw.
#[derive(Deserialize)]
struct TokenizerJson<M> {
    version: Option<String>,
    /// Entries also carry the `id` `tokenizers` gave them; it reassigns them when adding, as here.
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    normalizer: Option<NormalizerWrapper>,
    pre_tokenizer: Option<PreTokenizerWrapper>,
    post_processor: Option<PostProcessorWrapper>,
    decoder: Option<DecoderWrapper>,
    model: M,
}

impl<M> TokenizerJson<M> {
    /// The model apart from the rest.
    fn split(self) -> (TokenizerJson<()>, M) {
        let rest = TokenizerJson {
            version: self.version,
            added_tokens: self.added_tokens,
            normalizer: self.normalizer,
            pre_tokenizer: self.pre_tokenizer,
            post_processor: self.post_processor,
            decoder: self.decoder,
            model: (),
        };
        (rest, self.model)
    }
}

/// A `"type": "WordPiece"` model, every field required as `tokenizers` requires them. Read in
/// one pass; a model of another (or no) type fails here or has another `kind`.
#[derive(Deserialize)]
struct WordPieceJson {
    /// The model's `type` (absent in old files).
    #[serde(rename = "type")]
    kind: Option<String>,
    unk_token: String,
    continuing_subword_prefix: String,
    max_input_chars_per_word: usize,
    vocab: ahash::AHashMap<String, u32>,
}

#[derive(Deserialize, Default)]
struct TokenizerConfig {
    do_lower_case: Option<bool>,
    strip_accents: Option<bool>,
    tokenize_chinese_chars: Option<bool>,
}

impl QaTokenizer {
    /// The tokenizer as a `tokenizer.json` (with truncation and padding off), for model
    /// directories that only had `vocab.txt`.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        self.inner
            .to_string(false)
            .map(String::into_bytes)
            .map_err(|e| Error::Tokenizer {
                file: self.file.clone(),
                message: format!("serializing: {e}"),
            })
    }

    /// Builds the tokenizer from a model directory's tokenizer files.
    pub fn from_files(files: &TokenizerFiles) -> Result<QaTokenizer> {
        match files {
            TokenizerFiles::Json(bytes) => Self::from_json(bytes),
            TokenizerFiles::Vocab {
                vocab,
                tokenizer_config,
            } => Self::from_vocab(vocab, tokenizer_config.as_deref()),
        }
    }

    /// From `tokenizer.json` bytes: the same tokenizer as `tokenizers::Tokenizer::from_bytes`
    /// (a test compares their serializations), with WordPiece models read in one pass.
    pub fn from_json(bytes: &[u8]) -> Result<QaTokenizer> {
        let file = "tokenizer.json";
        let invalid = |message: String| Error::Tokenizer {
            file: file.into(),
            message,
        };
        let check_version = |version: &Option<String>| match version.as_deref() {
            Some(v) if v != "1.0" => Err(invalid(format!("unknown tokenizer version '{v}'"))),
            _ => Ok(()),
        };
        // WordPiece (every BERT): one pass over the file. Anything else, or a WordPiece that
        // does not parse as one, is read again with the model left raw for `tokenizers`' own
        // reader, whose error names the problem.
        let (parts, model, vocab_max) = match serde_json::from_slice::<TokenizerJson<WordPieceJson>>(bytes) {
            Ok(parts) if parts.model.kind.as_deref() == Some("WordPiece") => {
                let (parts, wp) = parts.split();
                check_version(&parts.version)?;
                let max = wp.vocab.values().copied().max();
                let model = WordPiece::builder()
                    .vocab(wp.vocab)
                    .unk_token(wp.unk_token)
                    .continuing_subword_prefix(wp.continuing_subword_prefix)
                    .max_input_chars_per_word(wp.max_input_chars_per_word)
                    .build()
                    .map_err(|e| invalid(format!("model: {e}")))?;
                (parts, ModelWrapper::WordPiece(model), max)
            }
            _ => {
                let raw: TokenizerJson<&RawValue> =
                    serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
                let (parts, raw_model) = raw.split();
                check_version(&parts.version)?;
                let model: ModelWrapper =
                    serde_json::from_str(raw_model.get()).map_err(|e| invalid(format!("model: {e}")))?;
                let max = tokenizers::Model::get_vocab(&model).into_values().max();
                (parts, model, max)
            }
        };
        // Truncation and padding are left off: squint makes its own windows.
        let built = TokenizerBuilder::new()
            .with_model(model)
            .with_normalizer(parts.normalizer)
            .with_pre_tokenizer(parts.pre_tokenizer)
            .with_post_processor(parts.post_processor)
            .with_decoder(parts.decoder)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        let mut inner = Tokenizer::from(built);
        inner.add_tokens(&parts.added_tokens);
        let max_id = parts
            .added_tokens
            .iter()
            .filter_map(|t| inner.token_to_id(&t.content))
            .chain(vocab_max)
            .max()
            .unwrap_or(0);
        Self::finish(inner, max_id, file)
    }

    /// From `vocab.txt` (one token per line) and the optional `tokenizer_config.json`
    /// (`do_lower_case` defaults to true, as for `bert-base-uncased`).
    pub fn from_vocab(vocab: &[u8], tokenizer_config: Option<&[u8]>) -> Result<QaTokenizer> {
        let file = "vocab.txt";
        let text = std::str::from_utf8(vocab).map_err(|e| Error::Tokenizer {
            file: file.into(),
            message: format!("not UTF-8: {e}"),
        })?;
        let mut map = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let token = line.trim_end_matches('\r');
            if !token.is_empty() {
                map.entry(token.to_string()).or_insert(i as u32);
            }
        }
        if map.is_empty() {
            return Err(Error::Tokenizer {
                file: file.into(),
                message: "empty vocabulary".into(),
            });
        }
        let config: TokenizerConfig = match tokenizer_config {
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| Error::Tokenizer {
                file: "tokenizer_config.json".into(),
                message: format!("not valid JSON: {e}"),
            })?,
            None => TokenizerConfig::default(),
        };
        let lowercase = config.do_lower_case.unwrap_or(true);
        let max_id = map.values().copied().max().unwrap_or(0);
        let wordpiece = WordPiece::builder()
            .vocab(map.into_iter().collect::<ahash::AHashMap<String, u32>>())
            .unk_token("[UNK]".into())
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(100)
            .build()
            .map_err(|e| Error::Tokenizer {
                file: file.into(),
                message: e.to_string(),
            })?;
        let mut inner = Tokenizer::new(wordpiece);
        inner.with_normalizer(Some(BertNormalizer::new(
            true,
            config.tokenize_chinese_chars.unwrap_or(true),
            config.strip_accents,
            lowercase,
        )));
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        Self::finish(inner, max_id, file)
    }

    fn finish(inner: Tokenizer, max_id: u32, file: &str) -> Result<QaTokenizer> {
        let id = |token: &str| {
            inner.token_to_id(token).ok_or_else(|| Error::Tokenizer {
                file: file.into(),
                message: format!("the vocabulary has no {token} token"),
            })
        };
        let special = SpecialTokens {
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            pad: id("[PAD]")?,
        };
        Ok(QaTokenizer {
            inner,
            special,
            max_id,
            file: file.to_string(),
        })
    }

    pub fn special(&self) -> SpecialTokens {
        self.special
    }

    /// The largest token id the tokenizer can produce (checked against the embedding table).
    pub fn max_token_id(&self) -> u32 {
        self.max_id
    }

    /// Token ids of a question, without special tokens.
    pub fn encode_question(&self, question: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(question, false).map_err(|e| Error::Tokenizer {
            file: self.file.clone(),
            message: e.to_string(),
        })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Token ids of a context with character offsets and word indices, without special tokens.
    pub fn encode_context(&self, context: &str) -> Result<ContextTokens> {
        let encoding = self
            .inner
            .encode_char_offsets(context, false)
            .map_err(|e| Error::Tokenizer {
                file: self.file.clone(),
                message: e.to_string(),
            })?;
        Ok(ContextTokens {
            ids: encoding.get_ids().to_vec(),
            offsets: encoding.get_offsets().to_vec(),
            words: encoding.get_word_ids().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tokenizers`' own reader, with truncation and padding off as squint uses it.
    fn reference(json: &[u8]) -> Tokenizer {
        let mut t = Tokenizer::from_bytes(json).expect("tokenizers reads it");
        t.with_truncation(None).expect("truncation off");
        t.with_padding(None);
        t
    }

    /// The one-pass reader builds the tokenizer `tokenizers` builds: same serialization, same
    /// encodings, same largest id.
    fn assert_same(json: &[u8], texts: &[&str]) {
        let ours = QaTokenizer::from_json(json).expect("reads");
        let theirs = reference(json);
        assert_eq!(
            ours.inner.to_string(false).expect("serializes"),
            theirs.to_string(false).expect("serializes")
        );
        assert_eq!(
            ours.max_token_id(),
            theirs.get_vocab(true).into_values().max().expect("a vocabulary")
        );
        for text in texts {
            let a = ours.inner.encode_char_offsets(*text, true).expect("encodes");
            let b = theirs.encode_char_offsets(*text, true).expect("encodes");
            assert_eq!(
                (a.get_ids(), a.get_offsets(), a.get_word_ids()),
                (b.get_ids(), b.get_offsets(), b.get_word_ids()),
                "{text}"
            );
        }
    }

    const TEXTS: [&str; 4] = [
        "Which name is also used to describe the Amazon rainforest in English?",
        "Amazonía, Forêt amazonienne: 7,000,000 km² — 東京 [SEP] <extra>tokens",
        "",
        "   unbelievably UNAFFABLE   ",
    ];

    #[test]
    fn bundled_tokenizer_matches_tokenizers() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/minilm-l6-squad-int8/tokenizer.json");
        let json = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_same(&json, &TEXTS);
    }

    /// A cased vocabulary with an added token the model lacks, a template post-processor,
    /// truncation and padding stored, and a non-WordPiece model (read by `tokenizers` itself).
    #[test]
    fn other_settings_match_tokenizers() {
        let vocab = r###"{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3,"amazon":4,"Amazon":5,"##ía":6,"tokens":7,"un":8,"##believ":9,"##ably":10}"###;
        let json = |model: &str| {
            format!(
                r###"{{"version":"1.0",
                "truncation":{{"direction":"Right","max_length":8,"strategy":"LongestFirst","stride":0}},
                "padding":{{"strategy":"BatchLongest","direction":"Right","pad_to_multiple_of":null,"pad_id":0,"pad_type_id":0,"pad_token":"[PAD]"}},
                "added_tokens":[
                  {{"id":3,"content":"[SEP]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}},
                  {{"id":11,"content":"<extra>","single_word":false,"lstrip":true,"rstrip":false,"normalized":false,"special":true}}],
                "normalizer":{{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":false,"lowercase":false}},
                "pre_tokenizer":{{"type":"BertPreTokenizer"}},
                "post_processor":{{"type":"TemplateProcessing","single":[{{"SpecialToken":{{"id":"[CLS]","type_id":0}}}},{{"Sequence":{{"id":"A","type_id":0}}}},{{"SpecialToken":{{"id":"[SEP]","type_id":0}}}}],
                  "pair":[{{"Sequence":{{"id":"A","type_id":0}}}},{{"Sequence":{{"id":"B","type_id":1}}}}],
                  "special_tokens":{{"[CLS]":{{"id":"[CLS]","ids":[2],"tokens":["[CLS]"]}},"[SEP]":{{"id":"[SEP]","ids":[3],"tokens":["[SEP]"]}}}}}},
                "decoder":{{"type":"WordPiece","prefix":"##","cleanup":true}},
                "model":{model}}}"###
            )
        };
        let wordpiece = format!(
            r###"{{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":{vocab}}}"###
        );
        assert_same(json(&wordpiece).as_bytes(), &TEXTS);
        let word_level = format!(r#"{{"type":"WordLevel","vocab":{vocab},"unk_token":"[UNK]"}}"#);
        assert_same(json(&word_level).as_bytes(), &TEXTS);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let cases = [
            (r#"{"version":"2.0","model":{}}"#, "version '2.0'"),
            (r#"{"version":"1.0"}"#, "model"),
            (
                r#"{"model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{}}}"#,
                "missing field",
            ),
            (r#"{"model":{"type":"WordPiece""#, "EOF"),
        ];
        for (json, wanted) in cases {
            let err = QaTokenizer::from_json(json.as_bytes()).unwrap_err().to_string();
            assert!(
                err.contains("tokenizer.json") && err.contains(wanted),
                "{json}: {err}"
            );
        }
    }
}
