//! Tensors out of a checkpoint: safetensors (from memory or a memory map) and, on native hosts,
//! PyTorch's `pytorch_model.bin`. Names are resolved with or without the `bert.` prefix, and
//! every tensor is checked against the shape the encoder expects.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A checkpoint tensor converted to `f32`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Anything that can hand out named tensors.
pub trait TensorSource {
    /// The file name used in error messages.
    fn file(&self) -> &str;
    /// Whether a tensor of exactly this name exists.
    fn contains(&self, name: &str) -> bool;
    /// The tensor of exactly this name, converted to f32.
    fn read(&self, name: &str) -> Result<Option<Tensor>>;
}

/// A safetensors file held in memory (owned bytes or a memory map).
#[derive(Debug)]
pub struct SafetensorsSource<B: AsRef<[u8]>> {
    file: String,
    bytes: B,
    /// name -> (dtype, shape, absolute byte range)
    index: HashMap<String, (Dtype, Vec<usize>, std::ops::Range<usize>)>,
    /// The header's `__metadata__` string map.
    metadata: HashMap<String, String>,
}

impl<B: AsRef<[u8]>> SafetensorsSource<B> {
    /// Validates the header and every tensor's byte range.
    pub fn new(file: &str, bytes: B) -> Result<Self> {
        let data = bytes.as_ref();
        let parsed = SafeTensors::deserialize(data).map_err(|e| Error::Checkpoint {
            file: file.to_string(),
            message: format!("not a valid safetensors file: {e}"),
        })?;
        let metadata = SafeTensors::read_metadata(data)
            .ok()
            .and_then(|(_, m)| m.metadata().clone())
            .unwrap_or_default();
        let mut index = HashMap::new();
        for (name, view) in parsed.tensors() {
            // The view borrows `data`; recover its absolute offset from the pointer difference.
            let start = view.data().as_ptr() as usize - data.as_ptr() as usize;
            index.insert(
                name.clone(),
                (
                    view.dtype(),
                    view.shape().to_vec(),
                    start..start + view.data().len(),
                ),
            );
        }
        Ok(SafetensorsSource {
            file: file.to_string(),
            bytes,
            index,
            metadata,
        })
    }

    /// Names of all tensors in the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// The header's `__metadata__` (empty when the file has none).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// A tensor's dtype, shape and little-endian bytes, as stored.
    pub fn raw(&self, name: &str) -> Option<(Dtype, &[usize], &[u8])> {
        self.index
            .get(name)
            .map(|(dtype, shape, range)| (*dtype, shape.as_slice(), &self.bytes.as_ref()[range.clone()]))
    }
}

impl<B: AsRef<[u8]>> TensorSource for SafetensorsSource<B> {
    fn file(&self) -> &str {
        &self.file
    }

    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    fn read(&self, name: &str) -> Result<Option<Tensor>> {
        let Some((dtype, shape, range)) = self.index.get(name) else {
            return Ok(None);
        };
        let raw = &self.bytes.as_ref()[range.clone()];
        let data = convert(raw, *dtype).ok_or_else(|| {
            Error::tensor(
                &self.file,
                name,
                format!("dtype {dtype:?} is not supported (F32, F16, BF16, F64)"),
            )
        })?;
        Ok(Some(Tensor {
            shape: shape.clone(),
            data,
        }))
    }
}

/// Little-endian bytes of a float dtype to f32.
fn convert(raw: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        _ => return None,
    })
}

/// IEEE binary16 to binary32, exact (subnormals, infinities and NaN included).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m · 2^-24.
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Tensors already loaded in memory (the PyTorch pickle path, and random models for benchmarks).
#[derive(Debug, Default)]
pub struct InMemorySource {
    file: String,
    tensors: HashMap<String, Tensor>,
}

impl InMemorySource {
    pub fn new(file: &str) -> Self {
        InMemorySource {
            file: file.to_string(),
            tensors: HashMap::new(),
        }
    }

    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }
}

impl TensorSource for InMemorySource {
    fn file(&self) -> &str {
        &self.file
    }

    fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn read(&self, name: &str) -> Result<Option<Tensor>> {
        Ok(self.tensors.get(name).cloned())
    }
}

/// Reads BERT tensors by their `BertModel` name (`embeddings.…`, `encoder.layer.N.…`), trying
/// the `bert.` prefix of `BertForQuestionAnswering` first and the old `gamma`/`beta` LayerNorm
/// names second, and checks shapes.
pub struct WeightReader<'a> {
    source: &'a dyn TensorSource,
}

impl std::fmt::Debug for WeightReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightReader")
            .field("file", &self.source.file())
            .finish()
    }
}

impl<'a> WeightReader<'a> {
    pub fn new(source: &'a dyn TensorSource) -> Self {
        WeightReader { source }
    }

    pub fn file(&self) -> &str {
        self.source.file()
    }

    fn candidates(name: &str) -> Vec<String> {
        let mut names = vec![format!("bert.{name}"), name.to_string()];
        let legacy = name
            .strip_suffix("LayerNorm.weight")
            .map(|p| format!("{p}LayerNorm.gamma"))
            .or_else(|| {
                name.strip_suffix("LayerNorm.bias")
                    .map(|p| format!("{p}LayerNorm.beta"))
            });
        if let Some(legacy) = legacy {
            names.push(format!("bert.{legacy}"));
            names.push(legacy);
        }
        names
    }

    /// Whether the checkpoint has this tensor under any accepted name.
    pub fn has(&self, name: &str) -> bool {
        Self::candidates(name).iter().any(|n| self.source.contains(n))
    }

    /// The tensor `name`, which must have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let candidates = Self::candidates(name);
        for candidate in &candidates {
            if let Some(tensor) = self.source.read(candidate)? {
                if tensor.shape != shape {
                    return Err(Error::tensor(
                        self.source.file(),
                        candidate,
                        format!("expected shape {shape:?}, found {:?}", tensor.shape),
                    ));
                }
                if tensor.data.iter().any(|v| !v.is_finite()) {
                    return Err(Error::tensor(
                        self.source.file(),
                        candidate,
                        "contains NaN or infinite values",
                    ));
                }
                return Ok(tensor.data);
            }
        }
        Err(Error::tensor(
            self.source.file(),
            name,
            format!(
                "missing (looked for {})",
                candidates
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st_bytes(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
        let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(n, s, d)| {
                (
                    n.to_string(),
                    s.clone(),
                    d.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = raw
            .iter()
            .map(|(n, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    #[test]
    fn resolves_prefix_and_legacy_names() {
        let bytes = st_bytes(&[
            (
                "bert.embeddings.word_embeddings.weight",
                vec![2, 2],
                vec![1.0, 2.0, 3.0, 4.0],
            ),
            ("encoder.layer.0.output.LayerNorm.gamma", vec![2], vec![1.0, 1.0]),
        ]);
        let src = SafetensorsSource::new("model.safetensors", bytes).unwrap();
        let r = WeightReader::new(&src);
        assert_eq!(
            r.get("embeddings.word_embeddings.weight", &[2, 2]).unwrap(),
            vec![1.0, 2.0, 3.0, 4.0]
        );
        assert_eq!(
            r.get("encoder.layer.0.output.LayerNorm.weight", &[2]).unwrap(),
            vec![1.0, 1.0]
        );
        let err = r
            .get("embeddings.word_embeddings.weight", &[3, 2])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("expected shape [3, 2], found [2, 2]"),
            "{err}"
        );
        let err = r.get("pooler.dense.weight", &[2, 2]).unwrap_err().to_string();
        assert!(
            err.contains("missing") && err.contains("`bert.pooler.dense.weight`"),
            "{err}"
        );
    }

    #[test]
    fn truncated_file_is_an_error() {
        let bytes = st_bytes(&[("a", vec![4], vec![1.0; 4])]);
        let cut = bytes[..bytes.len() - 3].to_vec();
        let err = SafetensorsSource::new("model.safetensors", cut)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("model.safetensors: not a valid safetensors file"),
            "{err}"
        );
        assert!(SafetensorsSource::new("x", vec![1u8, 2, 3]).is_err());
    }

    #[test]
    fn half_precision_conversions() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
        let bf = convert(&0x3f80u16.to_le_bytes(), Dtype::BF16).unwrap();
        assert_eq!(bf, vec![1.0]);
    }

    #[test]
    fn non_finite_weights_are_rejected() {
        let bytes = st_bytes(&[("w", vec![2], vec![1.0, f32::NAN])]);
        let src = SafetensorsSource::new("m.safetensors", bytes).unwrap();
        let err = WeightReader::new(&src).get("w", &[2]).unwrap_err().to_string();
        assert!(err.contains("NaN"), "{err}");
    }
}
