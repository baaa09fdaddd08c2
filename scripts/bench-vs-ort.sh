#!/usr/bin/env bash
# squint (FP32, INT8 dynamic and static) beside ONNX Runtime (FP32 plain export, FP32 transformer-
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
for pass in 1 2; do
  "$squint" bench --shape bert-base --seq "$seq" --threads "$threads" --iters "$iters" \
    --precision fp32,int8-dynamic,int8-static --json > "$out/squint-$pass.json"
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
for p in (1, 2):
    s = json.load(open(os.path.join(out, f"squint-{p}.json")))
    for r in s["results"]:
        rows.setdefault((r["seq"], r["threads"]), {}).setdefault("squint-" + r["precision"], []).append(r["median_ms"])
    for anchor in ("ort", "ipex"):
        path = os.path.join(out, f"{anchor}-{p}.json")
        if not os.path.exists(path):
            continue
        for r in json.load(open(path))["rows"]:
            rows.setdefault((r["seq"], r["threads"]), {}).setdefault(r["engine"], []).append(r["median_ms"])
print(f"kernel: {s['kernel']}; medians of {s['iters']} iterations, two alternating passes (pass 1 / pass 2), ms")
cols = ["squint-fp32", "ort-fp32", "ort-fp32-opt", "squint-int8-dynamic", "squint-int8-static", "ort-int8-dynamic", "ort-int8-dynamic-perchannel"]
ipex = all("ipex-static-int8" in e for e in rows.values())
cols += ["ipex-static-int8"] if ipex else []
extra = " squint INT8 static / IPEX |" if ipex else ""
print("| seq | thr | " + " | ".join(cols) + " | squint FP32 / best ORT FP32 | squint INT8 static / best ORT INT8 | squint FP32 / squint INT8 static |" + extra)
print("|" + "---|" * (len(cols) + 5 + ipex))
ratio = lambda a, bs: statistics.mean(x / min(ys) for x, ys in zip(a, zip(*bs)))
for (seq, t), e in sorted(rows.items()):
    fmt = lambda v: " / ".join(f"{x:.1f}" for x in v)
    r1 = ratio(e["squint-fp32"], [e["ort-fp32"], e["ort-fp32-opt"]])
    r2 = ratio(e["squint-int8-static"], [e["ort-int8-dynamic"], e["ort-int8-dynamic-perchannel"]])
    r3 = statistics.mean(a / b for a, b in zip(e["squint-fp32"], e["squint-int8-static"]))
    r4 = f" {statistics.mean(a / b for a, b in zip(e['squint-int8-static'], e['ipex-static-int8'])):.2f} |" if ipex else ""
    print(f"| {seq} | {t} | " + " | ".join(fmt(e[c]) for c in cols) + f" | {r1:.2f} | {r2:.2f} | {r3:.2f}x |" + r4)
PY
echo "raw results: $out"
