//! Loading model directories: every broken input is an error naming the file and the tensor,
//! never a panic.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::path::Path;

use squint_core::{Pipeline, PipelineOptions};

/// A copy of the tiny transformers fixture that a test may damage.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(common::fixtures().join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn load_error(dir: &Path) -> String {
    Pipeline::from_dir(dir, PipelineOptions::default())
        .unwrap_err()
        .to_string()
}

/// Rewrites model.safetensors with `edit` applied to its (name -> (shape, values)) map.
fn rewrite_weights(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, view.shape().to_vec(), values)
        })
        .collect();
    edit(&mut tensors);
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = raw
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
}

#[test]
fn missing_tensor_is_named() {
    let dir = copy_fixture("tiny-qa");
    rewrite_weights(dir.path(), |t| {
        t.retain(|(n, _, _)| n != "bert.encoder.layer.1.attention.self.key.weight")
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("model.safetensors")
            && err.contains("encoder.layer.1.attention.self.key.weight")
            && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn wrong_shape_is_named() {
    let dir = copy_fixture("tiny-qa");
    rewrite_weights(dir.path(), |t| {
        let w = t
            .iter_mut()
            .find(|(n, _, _)| n == "bert.encoder.layer.0.intermediate.dense.weight")
            .unwrap();
        w.1 = vec![w.1[1], w.1[0]];
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("intermediate.dense.weight") && err.contains("expected shape [64, 32], found [32, 64]"),
        "{err}"
    );
}

#[test]
fn truncated_or_garbage_weights_are_errors() {
    let dir = copy_fixture("tiny-qa");
    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(load_error(dir.path()).contains("model.safetensors: not a valid safetensors file"));
    std::fs::write(dir.path().join("model.safetensors"), b"").unwrap();
    assert!(load_error(dir.path()).contains("model.safetensors"));
    let dir = copy_fixture("tiny-qa-bin");
    std::fs::write(
        dir.path().join("pytorch_model.bin"),
        b"PK\x03\x04 definitely not a checkpoint",
    )
    .unwrap();
    let err = load_error(dir.path());
    assert!(err.starts_with("pytorch_model.bin: "), "{err}");
}

#[test]
fn broken_configs_and_missing_files_are_errors() {
    let dir = copy_fixture("tiny-qa");
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
    assert!(load_error(dir.path()).contains("config.json: model_type is \"gpt2\""));
    let config = std::fs::read_to_string(common::fixtures().join("tiny-qa/config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        config.replace("\"gelu\"", "\"mish\""),
    )
    .unwrap();
    assert!(load_error(dir.path()).contains("unknown hidden_act \"mish\""));
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    assert!(load_error(dir.path()).contains("config.json"));
    let dir = copy_fixture("tiny-qa");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    assert!(load_error(dir.path()).contains("no weights"));
    let dir = copy_fixture("tiny-qa");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    std::fs::remove_file(dir.path().join("vocab.txt")).unwrap();
    assert!(load_error(dir.path()).contains("no tokenizer"));
    let dir = copy_fixture("tiny-qa");
    std::fs::write(dir.path().join("tokenizer.json"), "{ not json").unwrap();
    assert!(load_error(dir.path()).contains("tokenizer (tokenizer.json)"));
    assert!(load_error(Path::new("/definitely/not/here")).contains("not a directory"));
}

#[test]
fn vocabulary_larger_than_the_model_is_an_error() {
    let dir = copy_fixture("tiny-qa-bin");
    let mut vocab = std::fs::read_to_string(dir.path().join("vocab.txt")).unwrap();
    for i in 0..2000 {
        vocab.push_str(&format!("extra{i}\n"));
    }
    std::fs::write(dir.path().join("vocab.txt"), vocab).unwrap();
    let err = load_error(dir.path());
    assert!(err.contains("does not fit the model's vocabulary"), "{err}");
}

#[test]
fn encoder_only_checkpoint_cannot_answer() {
    let dir = copy_fixture("tiny-qa");
    rewrite_weights(dir.path(), |t| t.retain(|(n, _, _)| !n.starts_with("qa_outputs")));
    let p = Pipeline::from_dir(dir.path(), PipelineOptions::default()).unwrap();
    let err = p
        .answer("what?", "a context", &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no question-answering head"), "{err}");
}
