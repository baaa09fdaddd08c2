#!/usr/bin/env bash
# squint FP32 beside ONNX Runtime FP32 (plain export and transformer-optimized graph), bert-base
# shape, random weights, batch 1, exact sequence lengths: same machine, same run, two
# alternating passes. Prints a table of medians and the ratio squint / best ONNX Runtime.
#   SHARED (default ../shared beside the repository): the anchors folder's parent.
#   ITERS (default 20), SEQ (default 128,384), THREADS (default 1,2)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$repo/../shared}
anchors=${ANCHORS_HOME:-$HOME/.cache/squint-anchors}
iters=${ITERS:-20}; seq=${SEQ:-128,384}; threads=${THREADS:-1,2}
out=$(mktemp -d)
bash "$shared/anchors/setup.sh" >/dev/null
(cd "$repo" && cargo build --release -q -p squint-cli)
squint=${CARGO_TARGET_DIR:-$repo/target}/release/squint
for pass in 1 2; do
  "$squint" bench --shape bert-base --seq "$seq" --threads "$threads" --iters "$iters" --json > "$out/squint-$pass.json"
  "$anchors/venv/bin/python" "$shared/anchors/ort_bench.py" --shape bert-base --seq "$seq" --threads "$threads" \
    --iters "$iters" --only ort-fp32,ort-fp32-opt --json "$out/ort-$pass.json" > "$out/ort-$pass.log" 2>&1
done
python3 - "$out" <<'PY'
import json, sys, statistics, os
out = sys.argv[1]
rows = {}
for p in (1, 2):
    s = json.load(open(os.path.join(out, f"squint-{p}.json")))
    for r in s["results"]:
        rows.setdefault((r["seq"], r["threads"]), {}).setdefault("squint", []).append(r["median_ms"])
    o = json.load(open(os.path.join(out, f"ort-{p}.json")))
    for r in o["rows"]:
        rows.setdefault((r["seq"], r["threads"]), {}).setdefault(r["engine"], []).append(r["median_ms"])
print(f"kernel: {s['kernel']}; medians of {s['iters']} iterations, two alternating passes (pass 1 / pass 2)")
print("| seq | threads | squint FP32 ms | ORT FP32 ms | ORT FP32 optimized ms | squint / best ORT |")
print("|---|---|---|---|---|---|")
for (seq, t), e in sorted(rows.items()):
    fmt = lambda v: " / ".join(f"{x:.1f}" for x in v)
    ratios = [sq / min(a, b) for sq, a, b in zip(e["squint"], e["ort-fp32"], e["ort-fp32-opt"])]
    print(f"| {seq} | {t} | {fmt(e['squint'])} | {fmt(e['ort-fp32'])} | {fmt(e['ort-fp32-opt'])} | {statistics.mean(ratios):.2f} |")
PY
echo "raw results: $out"
