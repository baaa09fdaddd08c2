#!/usr/bin/env bash
# squint (FP32, INT8 dynamic, INT8 static: int16 attention, int8 attention, 7-bit weights) beside ONNX Runtime (FP32 plain export, FP32 transformer-
# optimized graph, INT8 dynamic per-tensor and per-channel), bert-base shape, random weights,
# batch 1, exact sequence lengths: same machine, same run, two alternating passes.
# With IPEX=1 it also installs (once, ~3 GB) and times Intel Extension for PyTorch static INT8,
# the reference recipe's stack. Prints a markdown table of medians (pass 1 / pass 2) and ratios.
#   SHARED (default ../shared beside the repository): the anchors folder's parent.
#   ITERS (default 20), SEQ (default 128,384), THREADS (default 1,2)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$repo/../shared}
anchors=${ANCHORS_HOME:-$HOME/.cache/squint-anchors}
iters=${ITERS:-20}; seq=${SEQ:-128,384}; threads=${THREADS:-1,2}
out=$(mktemp -d)
ANCHORS_IPEX=${IPEX:-0} bash "$shared/anchors/setup.sh" >/dev/null
(cd "$repo" && cargo build --release -q -p squint-cli)
squint=${CARGO_TARGET_DIR:-$repo/target}/release/squint
ort_variants=ort-fp32,ort-fp32-opt,ort-int8-dynamic,ort-int8-dynamic-perchannel
# squint's INT8 static variants beside the defaults: "-a8" int8 attention, "-w7" 7-bit weights
# (one exact vpmaddubsw per product on AVX2 CPUs without VNNI).
for pass in 1 2; do
  "$squint" bench --shape bert-base --seq "$seq" --threads "$threads" --iters "$iters" \
    --precision fp32,int8-dynamic,int8-static --json > "$out/squint-$pass.json"
  "$squint" bench --shape bert-base --seq "$seq" --threads "$threads" --iters "$iters" \
    --precision int8-static --attention int8 --json > "$out/squint-a8-$pass.json"
  "$squint" bench --shape bert-base --seq "$seq" --threads "$threads" --iters "$iters" \
    --precision int8-static --weight-bits 7 --json > "$out/squint-w7-$pass.json"
  "$anchors/venv/bin/python" "$shared/anchors/ort_bench.py" --shape bert-base --seq "$seq" --threads "$threads" \
    --iters "$iters" --only "$ort_variants" --json "$out/ort-$pass.json" > "$out/ort-$pass.log" 2>&1
  if [ "${IPEX:-0}" = 1 ]; then
    "$anchors/venv-ipex/bin/python" "$shared/anchors/ipex_bench.py" --shape bert-base --seq "$seq" \
      --threads "$threads" --iters "$iters" --json "$out/ipex-$pass.json" > "$out/ipex-$pass.log" 2>&1
  fi
done
python3 - "$out" <<'PY'
import json, sys, statistics, os
out = sys.argv[1]
rows = {}
suffixes = ("", "-a8", "-w7")
for p in (1, 2):
    for suffix in suffixes:
        s = json.load(open(os.path.join(out, f"squint{suffix}-{p}.json")))
        for r in s["results"]:
            key = "squint-" + r["precision"] + suffix
            rows.setdefault((r["seq"], r["threads"]), {}).setdefault(key, []).append(r["median_ms"])
    for anchor in ("ort", "ipex"):
        path = os.path.join(out, f"{anchor}-{p}.json")
        if not os.path.exists(path):
            continue
        for r in json.load(open(path))["rows"]:
            rows.setdefault((r["seq"], r["threads"]), {}).setdefault(r["engine"], []).append(r["median_ms"])
print(f"kernel: {s['kernel']}; medians of {s['iters']} iterations, two alternating passes (pass 1 / pass 2), ms")
statics = ["squint-int8-static" + x for x in suffixes]
cols = ["squint-fp32", "ort-fp32", "ort-fp32-opt", "squint-int8-dynamic"] + statics + ["ort-int8-dynamic", "ort-int8-dynamic-perchannel"]
ipex = all("ipex-static-int8" in e for e in rows.values())
cols += ["ipex-static-int8"] if ipex else []
print("| seq | thr | " + " | ".join(cols) + " |")
print("|" + "---|" * (len(cols) + 2))
for (seq, t), e in sorted(rows.items()):
    fmt = lambda v: " / ".join(f"{x:.1f}" for x in v)
    print(f"| {seq} | {t} | " + " | ".join(fmt(e[c]) for c in cols) + " |")
# Ratios: mean over the two passes of each pass's ratio (< 1: squint faster).
ratio = lambda a, bs: statistics.mean(x / min(ys) for x, ys in zip(a, zip(*bs)))
names = {"": "static", "-a8": "static a8", "-w7": "static w7"}
heads = ["squint FP32 / best ORT FP32"]
heads += [f"INT8 {names[x]} / best ORT INT8" for x in suffixes]
heads += [f"FP32 / INT8 {names[x]}" for x in suffixes]
heads += [f"INT8 {names[x]} / IPEX" for x in suffixes] if ipex else []
print()
print("| seq | thr | " + " | ".join(heads) + " |")
print("|" + "---|" * (len(heads) + 2))
for (seq, t), e in sorted(rows.items()):
    cells = [ratio(e["squint-fp32"], [e["ort-fp32"], e["ort-fp32-opt"]])]
    cells += [ratio(e[c], [e["ort-int8-dynamic"], e["ort-int8-dynamic-perchannel"]]) for c in statics]
    cells += [statistics.mean(f / x for f, x in zip(e["squint-fp32"], e[c])) for c in statics]
    cells += [ratio(e[c], [e["ipex-static-int8"]]) for c in statics] if ipex else []
    print(f"| {seq} | {t} | " + " | ".join(f"{v:.2f}" for v in cells) + " |")
PY
echo "raw results: $out"
