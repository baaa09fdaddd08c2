//! The component boundary: wit-bindgen's generated `squint:qa/engine` exports, implemented by
//! translating to and from squint-core.

use squint_core::{BytesModel, ModelBytes};

use crate::{kind_of, to_u32, Kind, WireParams};

wit_bindgen::generate!({
    world: "qa",
    path: "../wit",
});

use exports::squint::qa::engine::{
    Answer, Answers, Error, ErrorKind, Guest, GuestModel, Model, ModelFiles, ModelInfo, Params,
};

struct Component;

export!(Component);

impl Guest for Component {
    type Model = LoadedModel;

    fn self_test(cases: u32, seed: u64) -> Result<Vec<String>, String> {
        squint_kernels::selftest::int8_kernels(cases as usize, seed)
            .map(|kernels| kernels.into_iter().map(String::from).collect())
    }
}

/// A model loaded inside this instance.
struct LoadedModel {
    model: BytesModel,
}

fn error(e: squint_core::Error) -> Error {
    let kind = match kind_of(&e) {
        Kind::Input => ErrorKind::Input,
        Kind::Model => ErrorKind::Model,
        Kind::Internal => ErrorKind::Internal,
    };
    Error {
        kind,
        message: e.to_string(),
    }
}

fn params(p: Params) -> squint_core::QaParams {
    WireParams {
        top_k: p.top_k,
        max_answer_len: p.max_answer_len,
        max_seq_len: p.max_seq_len,
        doc_stride: p.doc_stride,
        max_question_len: p.max_question_len,
        handle_impossible_answer: p.handle_impossible_answer,
        align_to_words: p.align_to_words,
    }
    .into()
}

impl GuestModel for LoadedModel {
    fn load(files: ModelFiles) -> Result<Model, Error> {
        let model = BytesModel::load(
            ModelBytes {
                config: &files.config,
                tokenizer: &files.tokenizer,
                weights_name: &files.weights_name,
                weights: files.weights,
                manifest: files.manifest.as_deref(),
            },
            &Default::default(),
        )
        .map_err(error)?;
        Ok(Model::new(LoadedModel { model }))
    }

    fn info(&self) -> ModelInfo {
        let i = self.model.info();
        ModelInfo {
            precision: i.precision.to_string(),
            kernel: i.kernel.to_string(),
            layers: to_u32(i.layers),
            hidden: to_u32(i.hidden),
            max_positions: to_u32(i.max_positions),
        }
    }

    fn answer(&self, question: String, context: String, p: Params) -> Result<Answers, Error> {
        #[cfg(feature = "hostile")]
        crate::hostile::act_on(&question);
        let (found, windows) = self
            .model
            .answer(&question, &context, &params(p))
            .map_err(error)?;
        Ok(Answers {
            best: found
                .into_iter()
                .map(|a| Answer {
                    score: a.score,
                    start: to_u32(a.start),
                    end: to_u32(a.end),
                    text: a.answer,
                })
                .collect(),
            windows: to_u32(windows),
        })
    }

    fn logits(&self, question: String, context: String, p: Params) -> Result<Vec<f32>, Error> {
        self.model.logits(&question, &context, &params(p)).map_err(error)
    }

    fn forward(&self, seq: u32) -> Result<(), Error> {
        self.model.forward(seq as usize).map_err(error)
    }
}
