#!/usr/bin/env bash
# Reproduces k2-nano from scratch: synthesize → tokenizer + SFT (MuonClip) → RL → BF16 / INT4 export → eval.
# Usage: bash recipes/k2-nano/build.sh [RUN_DIR]   (default runs/k2-nano; the shipped model goes to models/k2-nano)
set -euo pipefail
cd "$(dirname "$0")/../.."
run=${1:-runs/k2-nano}
kimi=./kimi
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start ))s] $*"; }

stamp "1/6 synthesize agentic data (rubric-filtered)"
$kimi synthesize --out "$run/data" --count 8000 --seed 1 --max-cities 60

stamp "2/6 tokenizer + SFT with MuonClip (recipes/k2-nano/sft.json)"
sed "s#../../runs/k2-nano#../../$run#g" recipes/k2-nano/sft.json > "$run/sft.json"
cp "$run/sft.json" "recipes/k2-nano/.sft-resolved.json"
$kimi train --config recipes/k2-nano/.sft-resolved.json

stamp "3/6 RL with verifiable rewards"
$kimi rl --config recipes/k2-nano/.sft-resolved.json --from "$run/sft" --out "$run/rl" --iterations 2 --tasks 24 --samples 4 --steps 12
policy=$(ls -d "$run"/rl/iter-* | sort | tail -1)/final

stamp "4/6 export BF16 and INT4 (compressed-tensors, routed experts)"
rm -rf "$run/export" && mkdir -p "$run/export"
$kimi quantize --model "$policy" --out "$run/export/bf16" --quant bf16
$kimi quantize --model "$run/export/bf16" --out "$run/export/int4" --quant int4
rm -rf models/k2-nano && mkdir -p models/k2-nano
cp "$run"/export/int4/* models/k2-nano/
mkdir -p models/k2-nano/bf16 && cp "$run"/export/bf16/* models/k2-nano/bf16/
cp "$run/data/knowledge_base.json" "$run/data/report.md" models/k2-nano/ 2>/dev/null || true
cp "$run/rl/report.md" models/k2-nano/rl-report.md
mv models/k2-nano/report.md models/k2-nano/synthesis-report.md

stamp "5/6 evaluate (tool-use suite)"
$kimi eval --model models/k2-nano --suite tool-use --out models/k2-nano/eval.json | tee models/k2-nano/eval.md

stamp "6/6 done: models/k2-nano ($(du -sh models/k2-nano | cut -f1))"
