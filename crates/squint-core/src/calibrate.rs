//! Calibration for the static recipe: run the FP32 model on sample questions and record the
//! range of every linear layer's input with an observer (MinMax, or a percentile that ignores
//! the rarest outliers).

use std::collections::BTreeMap;

use crate::artifact::Ranges;
use crate::bert::{Batch, Bert, Workspace};
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::params::QaParams;
use crate::quant::Site;
use crate::tokenizer::QaTokenizer;
use crate::window::Windows;

/// How a layer's input range is estimated from the calibration activations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Observer {
    /// The smallest and largest value seen (the reference recipe's choice).
    MinMax,
    /// Per window, the `p`-th and `(100 − p)`-th percentiles of the values; averaged over
    /// windows. Clips the rarest outliers, trading them for finer steps elsewhere.
    Percentile(f32),
}

impl Observer {
    /// `minmax` or `percentile-P` (P in (50, 100]).
    pub fn name(&self) -> String {
        match self {
            Observer::MinMax => "minmax".into(),
            Observer::Percentile(p) => format!("percentile-{p}"),
        }
    }

    pub fn parse(name: &str) -> Option<Observer> {
        if name == "minmax" {
            return Some(Observer::MinMax);
        }
        let p: f32 = name.strip_prefix("percentile-")?.parse().ok()?;
        (p > 50.0 && p <= 100.0).then_some(Observer::Percentile(p))
    }
}

/// Running statistics of one site.
#[derive(Clone, Copy, Debug)]
struct Stat {
    lo: f64,
    hi: f64,
    windows: usize,
}

/// Collects input ranges over calibration windows.
#[derive(Debug)]
pub struct Calibrator<'p> {
    model: &'p Bert,
    exec: &'p Executor,
    observer: Observer,
    stats: BTreeMap<Site, Stat>,
    workspace: Workspace,
    features: usize,
    scratch: Vec<f32>,
}

impl<'p> Calibrator<'p> {
    /// `model` must run FP32 (ranges of a quantized model would compound its error).
    pub fn new(model: &'p Bert, exec: &'p Executor, observer: Observer) -> Result<Self> {
        if model.precision() != crate::Precision::Fp32 {
            return Err(Error::parameter(
                "model",
                "calibration needs the FP32 checkpoint, not an INT8 artifact",
            ));
        }
        Ok(Calibrator {
            model,
            exec,
            observer,
            stats: BTreeMap::new(),
            workspace: Workspace::default(),
            features: 0,
            scratch: Vec::new(),
        })
    }

    /// Runs every window of one question (384/128 windows, as served) through the model.
    pub fn add_question(&mut self, tokenizer: &QaTokenizer, question: &str, context: &str) -> Result<usize> {
        let params = QaParams::default();
        let resolved = params.resolve(self.model.config().max_position_embeddings)?;
        let windows = Windows::plan(tokenizer, question, context, &resolved)?;
        for w in 0..windows.len() {
            let len = windows.seq_len(w);
            let (mut ids, mut types) = (vec![0u32; len], vec![0u32; len]);
            windows.fill(w, &mut ids, &mut types);
            self.add_window(&ids, &types)?;
        }
        Ok(windows.len())
    }

    /// Runs one unpadded window (ids and token types) through the model.
    pub fn add_window(&mut self, ids: &[u32], types: &[u32]) -> Result<()> {
        let len = ids.len();
        let batch = Batch {
            ids,
            types,
            lengths: &[len],
            seq_len: len,
        };
        let (observer, stats, scratch) = (self.observer, &mut self.stats, &mut self.scratch);
        let mut probe = |site: Site, rows: &[f32]| {
            let (lo, hi) = observe(observer, rows, scratch);
            // MinMax keeps running extremes; Percentile sums per-window values for the mean.
            let start = match observer {
                Observer::MinMax => (f64::INFINITY, f64::NEG_INFINITY),
                Observer::Percentile(_) => (0.0, 0.0),
            };
            let s = stats.entry(site).or_insert(Stat {
                lo: start.0,
                hi: start.1,
                windows: 0,
            });
            match observer {
                Observer::MinMax => {
                    s.lo = s.lo.min(lo as f64);
                    s.hi = s.hi.max(hi as f64);
                }
                Observer::Percentile(_) => {
                    s.lo += lo as f64;
                    s.hi += hi as f64;
                }
            }
            s.windows += 1;
        };
        self.model
            .encode_probed(&batch, &mut self.workspace, self.exec, &mut probe)?;
        self.features += 1;
        Ok(())
    }

    /// Windows seen so far.
    pub fn features(&self) -> usize {
        self.features
    }

    /// The ranges, each widened to contain 0 (so zero padding and ReLU zeros are exact).
    pub fn finish(self) -> Result<Ranges> {
        if self.features == 0 {
            return Err(Error::parameter("samples", "calibration saw no windows"));
        }
        Ok(self
            .stats
            .into_iter()
            .map(|(site, s)| {
                let (lo, hi) = match self.observer {
                    Observer::MinMax => (s.lo, s.hi),
                    Observer::Percentile(_) => (s.lo / s.windows as f64, s.hi / s.windows as f64),
                };
                (site, ((lo as f32).min(0.0), (hi as f32).max(0.0)))
            })
            .collect())
    }
}

/// One window's `(lo, hi)` for a site.
fn observe(observer: Observer, rows: &[f32], scratch: &mut Vec<f32>) -> (f32, f32) {
    if rows.is_empty() {
        return (0.0, 0.0);
    }
    match observer {
        Observer::MinMax => rows
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            }),
        Observer::Percentile(p) => {
            scratch.clear();
            scratch.extend_from_slice(rows);
            let n = scratch.len();
            let top = (((p as f64 / 100.0) * (n - 1) as f64).round() as usize).min(n - 1);
            let bottom = n - 1 - top;
            let (_, hi, _) = scratch.select_nth_unstable_by(top, f32::total_cmp);
            let hi = *hi;
            let (_, lo, _) = scratch.select_nth_unstable_by(bottom, f32::total_cmp);
            (*lo, hi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observers() {
        let rows: Vec<f32> = (0..1001).map(|i| i as f32 - 500.0).collect();
        let mut s = Vec::new();
        assert_eq!(observe(Observer::MinMax, &rows, &mut s), (-500.0, 500.0));
        assert_eq!(
            observe(Observer::Percentile(99.0), &rows, &mut s),
            (-490.0, 490.0)
        );
        assert_eq!(
            observe(Observer::Percentile(100.0), &rows, &mut s),
            (-500.0, 500.0)
        );
        assert_eq!(
            Observer::parse("percentile-99.99"),
            Some(Observer::Percentile(99.99))
        );
        assert_eq!(Observer::parse("minmax"), Some(Observer::MinMax));
        assert_eq!(Observer::parse("percentile-20"), None);
        assert_eq!(
            Observer::parse(&Observer::Percentile(99.9).name()),
            Some(Observer::Percentile(99.9))
        );
    }
}
