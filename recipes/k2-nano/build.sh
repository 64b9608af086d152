#!/usr/bin/env bash
# Reproduces k2-nano from scratch on this machine:
#   synthesize → BPE tokenizer + copy/recall warm-up → agentic SFT → RL → long-horizon SFT → RL → BF16 / INT4 export → eval.
# Usage: bash recipes/k2-nano/build.sh        (work in runs/k2-nano; the shipped model goes to models/k2-nano)
set -euo pipefail
cd "$(dirname "$0")/../.."
run=runs/k2-nano
./kimi --version >/dev/null   # builds the CLI once, before the long steps
kimi="dotnet .build/cli/kimi.dll"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start ))s] $*"; }

stamp "1/9 synthesize agentic data through the rubric filter (three mixes: 30%, 15% and 35% long-horizon tasks) and a copy/recall warm-up text"
$kimi synthesize --out $run/data --count 8000 --seed 1 --max-cities 60 --recall 60000 --template recipes/k2-nano/chat_template.jinja
$kimi synthesize --out $run/data2 --count 30000 --seed 2 --max-cities 30 --long-share 0.15 --template recipes/k2-nano/chat_template.jinja
$kimi synthesize --out $run/data3 --count 20000 --seed 3 --max-cities 40 --long-share 0.35 --max-chunks 4 --template recipes/k2-nano/chat_template.jinja

stamp "2/9 BPE tokenizer + warm-up (MuonClip, 4000 steps of 2K tokens: half copy/recall text, half first-mix trajectories)"
$kimi train --config recipes/k2-nano/warmup.json

stamp "3/9 agentic SFT (4000 steps of ~3K tokens, length-bucketed second mix, warmup-stable-decay)"
$kimi train --config recipes/k2-nano/sft.json

stamp "4/9 RL with verifiable rewards (policy gradient, group-mean baseline)"
$kimi rl --config recipes/k2-nano/sft.json --from $run/sft --out $run/rl --iterations 4 --tasks 32 --eval-tasks 50

stamp "5/9 long-horizon SFT from the RL policy (2000 steps on the third mix: cities queued in memory, popped one by one)"
$kimi train --config recipes/k2-nano/long.json

stamp "6/9 RL again, on 1-, 10- and 50-call tasks (where sampled runs disagree, so there is signal)"
$kimi rl --config recipes/k2-nano/long.json --from $run/long --out $run/rl2 --iterations 3 --tasks 24 --eval-tasks 20 --horizons 1,10,50 --budget 12000 --lr 0.001
policy=$(cat $run/rl2/policy.txt)

stamp "7/9 export BF16 and INT4 (compressed-tensors pack-quantized, routed experts, group 32)"
rm -rf $run/export && mkdir -p $run/export
$kimi quantize --model "$policy" --out $run/export/bf16 --quant bf16
$kimi quantize --model $run/export/bf16 --out $run/export/int4 --quant int4
rm -rf models/k2-nano && mkdir -p models/k2-nano/bf16
cp $run/export/int4/* models/k2-nano/
cp $run/export/bf16/* models/k2-nano/bf16/
cp $run/data/knowledge_base.json models/k2-nano/
cp $run/data2/report.md models/k2-nano/synthesis-report.md
cp $run/data3/report.md models/k2-nano/synthesis-report-long.md
cp $run/rl2/report.md models/k2-nano/rl-report.md

stamp "8/9 evaluate the shipped INT4 model on the tool-use suite"
$kimi eval --model models/k2-nano --suite tool-use --out models/k2-nano/eval.json | tee models/k2-nano/eval.md

stamp "9/9 done: models/k2-nano is $(du -sh models/k2-nano | cut -f1)"
