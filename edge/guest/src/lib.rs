//! squint as a WebAssembly component for the edge gateway: the WIT world `squint:qa/qa`
//! (`edge/wit/squint.wit`) over squint-core's [`BytesModel`](squint_core::BytesModel). The
//! component bindings exist only on wasm32 ([`component`]); what they translate is plain Rust
//! here, tested natively.

use squint_core::{Error, QaParams};

#[cfg(target_arch = "wasm32")]
mod component;
#[cfg(feature = "hostile")]
pub mod hostile;

/// The WIT `error-kind` of a squint-core error: the host turns `Input` into a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Input,
    Model,
    Internal,
}

pub fn kind_of(error: &Error) -> Kind {
    match error {
        Error::Input(_) | Error::Parameter { .. } => Kind::Input,
        Error::Io { .. }
        | Error::Config { .. }
        | Error::Tensor { .. }
        | Error::Checkpoint { .. }
        | Error::Tokenizer { .. }
        | Error::NoQaHead => Kind::Model,
        Error::Threads(_) | Error::PackedKernel(_) | Error::Int8Kernel(_) | Error::Attention(_) => {
            Kind::Internal
        }
    }
}

/// The WIT `params` record's fields, as squint-core's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireParams {
    pub top_k: u32,
    pub max_answer_len: u32,
    pub max_seq_len: Option<u32>,
    pub doc_stride: Option<u32>,
    pub max_question_len: u32,
    pub handle_impossible_answer: bool,
    pub align_to_words: bool,
}

impl From<WireParams> for QaParams {
    fn from(p: WireParams) -> QaParams {
        QaParams {
            top_k: p.top_k as usize,
            max_answer_len: p.max_answer_len as usize,
            max_seq_len: p.max_seq_len.map(|v| v as usize),
            doc_stride: p.doc_stride.map(|v| v as usize),
            max_question_len: p.max_question_len as usize,
            handle_impossible_answer: p.handle_impossible_answer,
            align_to_words: p.align_to_words,
        }
    }
}

/// A count that must fit the WIT's `u32` (character offsets, windows, layer sizes).
pub fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_input_and_params_round_trip() {
        assert_eq!(kind_of(&Error::Input("empty question".into())), Kind::Input);
        assert_eq!(
            kind_of(&Error::Checkpoint {
                file: "f".into(),
                message: "m".into()
            }),
            Kind::Model
        );
        let p = WireParams {
            top_k: 3,
            max_answer_len: 30,
            max_seq_len: Some(256),
            doc_stride: None,
            max_question_len: 64,
            handle_impossible_answer: true,
            align_to_words: false,
        };
        let q = QaParams::from(p);
        assert_eq!((q.top_k, q.max_seq_len, q.doc_stride), (3, Some(256), None));
        assert!(q.handle_impossible_answer && !q.align_to_words);
    }
}
