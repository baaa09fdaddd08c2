//! `pytorch_model.bin` (PyTorch's zip + pickle format), read with candle's pickle reader.
//! Native only: browsers and the edge guest are given safetensors.

use std::path::Path;

use crate::error::{Error, Result};
use crate::weights::{InMemorySource, Tensor};

/// Reads every tensor of a PyTorch checkpoint as f32.
pub fn read_pytorch(path: &Path) -> Result<InMemorySource> {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let err = |message: String| Error::Checkpoint {
        file: file.clone(),
        message,
    };
    let tensors = candle_core::pickle::read_all(path)
        .map_err(|e| err(format!("not a readable PyTorch checkpoint: {e}")))?;
    let mut source = InMemorySource::new(&file);
    for (name, tensor) in tensors {
        let shape = tensor.dims().to_vec();
        let data = tensor
            .to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| Error::tensor(&file, &name, format!("cannot convert to f32: {e}")))?;
        source.insert(name, Tensor { shape, data });
    }
    Ok(source)
}
