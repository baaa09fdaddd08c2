//! The vocabulary of quantization: which linear layer is which ([`Site`], [`Role`]), how a
//! layer's input becomes u8 ([`InputQuant`]), and symmetric per-row int8 weights.

use squint_kernels::int8::RowQuant;

/// The four linear layers of a transformer layer, as the recipe and the artifact name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Q, K and V fused (input: the layer's input hidden states).
    Qkv,
    /// The attention output projection (input: the attention context).
    AttentionOutput,
    /// FFN in (input: hidden states after the attention LayerNorm).
    Intermediate,
    /// FFN out (input: the activation output, GELU).
    Output,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Qkv, Role::AttentionOutput, Role::Intermediate, Role::Output];

    /// The short name used on the command line and in artifact metadata.
    pub fn name(self) -> &'static str {
        match self {
            Role::Qkv => "qkv",
            Role::AttentionOutput => "attention-output",
            Role::Intermediate => "ffn-in",
            Role::Output => "ffn-out",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The tensor-name suffix inside `encoder.layer.N.` (Q, K, V fused under `attention.self.qkv`).
    pub fn tensor_prefix(self) -> &'static str {
        match self {
            Role::Qkv => "attention.self.qkv",
            Role::AttentionOutput => "attention.output.dense",
            Role::Intermediate => "intermediate.dense",
            Role::Output => "output.dense",
        }
    }
}

/// One linear layer of the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Site {
    pub layer: usize,
    pub role: Role,
}

impl Site {
    /// `encoder.layer.N.<role prefix>`: the name stem of this layer's tensors in an artifact.
    pub fn prefix(&self) -> String {
        format!("encoder.layer.{}.{}", self.layer, self.role.tensor_prefix())
    }
}

/// How a quantized layer's input is mapped to u8.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputQuant {
    /// Range of each token's row measured at run time.
    PerToken,
    /// One calibrated range for the whole tensor.
    Static(RowQuant),
}

/// The grid of a linear layer's int8 weights. Seven bits ([-63, 63]) make AVX2's single
/// `vpmaddubsw` exact (2·255·63 < 2^15), about twice the INT8 GEMM speed on CPUs without VNNI,
/// for a grid half as fine; VNNI and wasm kernels run both at the same speed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightBits {
    /// [-127, 127].
    #[default]
    Eight,
    /// [-63, 63].
    Seven,
}

impl WeightBits {
    /// The largest magnitude a quantized weight may take.
    pub fn qmax(self) -> i8 {
        match self {
            WeightBits::Eight => 127,
            WeightBits::Seven => 63,
        }
    }

    /// The name used on the command line and in artifact metadata (`weight_bits`).
    pub fn name(self) -> &'static str {
        match self {
            WeightBits::Eight => "8",
            WeightBits::Seven => "7",
        }
    }

    pub fn parse(name: &str) -> Option<WeightBits> {
        match name.trim() {
            "8" => Some(WeightBits::Eight),
            "7" => Some(WeightBits::Seven),
            _ => None,
        }
    }
}

/// Symmetric quantization of each row of `w` (`[rows, cols]`) to `[-qmax, qmax]`:
/// `scale = max|w| / qmax`, `q = round(w / scale)`. All-zero rows get scale 1.
pub fn quantize_rows_symmetric(w: &[f32], cols: usize, qmax: i8) -> (Vec<i8>, Vec<f32>) {
    let limit = f32::from(qmax.max(1));
    let rows = w.len().checked_div(cols).unwrap_or(0);
    let mut q = vec![0i8; rows * cols];
    let mut scales = Vec::with_capacity(rows);
    for (row, out) in w.chunks_exact(cols).zip(q.chunks_exact_mut(cols)) {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / limit } else { 1.0 };
        for (o, v) in out.iter_mut().zip(row) {
            *o = (v / scale).round().clamp(-limit, limit) as i8;
        }
        scales.push(scale);
    }
    (q, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_rows_round_trip_within_half_a_step() {
        let w = [0.5f32, -1.0, 0.25, 0.0, 0.0, 0.0, 3.0, 2.0, -0.1];
        for bits in [WeightBits::Eight, WeightBits::Seven] {
            let qmax = bits.qmax();
            let (q, s) = quantize_rows_symmetric(&w, 3, qmax);
            assert_eq!(q[1], -qmax);
            assert_eq!(s[1], 1.0, "zero row keeps scale 1");
            assert_eq!(q[6], qmax);
            assert!(q.iter().all(|v| v.abs() <= qmax));
            for (i, v) in w.iter().enumerate() {
                assert!((q[i] as f32 * s[i / 3] - v).abs() <= s[i / 3] / 2.0 + 1e-7);
            }
            assert_eq!(WeightBits::parse(bits.name()), Some(bits));
        }
        assert_eq!(WeightBits::parse("6"), None);
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.name()), Some(r));
        }
        assert_eq!(
            Site {
                layer: 3,
                role: Role::Qkv
            }
            .prefix(),
            "encoder.layer.3.attention.self.qkv"
        );
    }
}
