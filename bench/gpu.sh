#!/usr/bin/env bash
# The GPU figures of issue 16 in one command (under 8 minutes on one H100/H200), one JSON:
#   bash bench/gpu.sh [OUT_DIR]        # default bench/results -> OUT_DIR/gpu.json
# 1. python -m bench.train --device cuda: tokens/s, MFU (dense bf16 peak) and data wait of GPT-2
#    tiny/small/large and BERT-base (L=300), HF and stacked trainers (the stacked BERT: fused QKV,
#    SDPA with the padding mask, head on the masked positions only), on shards read by MixtureStream.
#    Each case is saved as it finishes, so a case cut by the time limit loses only itself.
# 2. python -m bench.train --device cuda --sweep 11: 11 GPT-2 tiny proxies of a DDO sweep (1 + 2·5),
#    one after another (mixer.trainers.hf_train.train) vs together (mixer.trainers.batched), 320k tokens each.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench/results}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
status=0
timeout 300 python -m bench.train --device cuda --out "$out/gpu-train.json" || status=$?
timeout 160 python -m bench.train --device cuda --sweep 11 --budget 327680 --repeats 1 \
  --out "$out/gpu-proxies.json" || status=$?
python - "$out" <<'PY'
import json, os, sys, time
out = sys.argv[1]
parts = {}
for name in ("train", "proxies"):
    path = os.path.join(out, f"gpu-{name}.json")
    parts[name] = json.load(open(path)) if os.path.exists(path) else {"error": "did not finish (see the log)"}
parts["written"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
json.dump(parts, open(os.path.join(out, "gpu.json"), "w"), indent=2, sort_keys=True)
print("wrote", os.path.join(out, "gpu.json"))
PY
exit $status
