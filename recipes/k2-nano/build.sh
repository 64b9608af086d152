#!/usr/bin/env bash
# Reproduces k2-nano from scratch on this machine:
#   synthesize → BPE tokenizer + copy/recall warm-up → agentic SFT → RL → long-horizon SFT → RL → BF16 / INT4 export → eval.
# Usage: bash recipes/k2-nano/build.sh        (work in runs/k2-nano; the shipped model goes to models/k2-nano)
# Resumable: run it again after an interruption. Finished stages are skipped (runs/k2-nano/.done/), and a training
# stage that was cut off continues from its last saved state (kimi train --resume, bit-exact).
set -euo pipefail
cd "$(dirname "$0")/../.."
run=runs/k2-nano
./kimi --version >/dev/null   # builds the CLI once, before the long steps
kimi="dotnet .build/cli/kimi.dll"
stages=9
source recipes/stages.sh

if stage 1 "synthesize agentic data through the rubric filter (three mixes: 30%, 15% and 35% long-horizon tasks) and a copy/recall warm-up text"; then
  $kimi synthesize --out $run/data --count 8000 --seed 1 --max-cities 60 --recall 60000 --template recipes/k2-nano/chat_template.jinja
  $kimi synthesize --out $run/data2 --count 30000 --seed 2 --max-cities 30 --long-share 0.15 --template recipes/k2-nano/chat_template.jinja
  $kimi synthesize --out $run/data3 --count 20000 --seed 3 --max-cities 40 --long-share 0.35 --max-chunks 4 --template recipes/k2-nano/chat_template.jinja
  finish 1
fi

if stage 2 "BPE tokenizer + warm-up (MuonClip, 4000 steps of 2K tokens: half copy/recall text, half first-mix trajectories)"; then
  $kimi train --resume --config recipes/k2-nano/warmup.json
  finish 2
fi

if stage 3 "agentic SFT (4000 steps of ~3K tokens, length-bucketed second mix, warmup-stable-decay)"; then
  $kimi train --resume --config recipes/k2-nano/sft.json
  finish 3
fi

if stage 4 "RL with verifiable rewards (policy gradient, group-mean baseline)"; then
  $kimi rl --config recipes/k2-nano/sft.json --from $run/sft --out $run/rl --iterations 4 --tasks 32 --eval-tasks 50
  rm -rf $run/policy1 && cp -r "$(cat $run/rl/policy.txt)" $run/policy1   # the RL iteration kept, or SFT's model
  finish 4
fi

if stage 5 "long-horizon SFT from the RL policy (2000 steps on the third mix: cities queued in memory, popped one by one)"; then
  $kimi train --resume --config recipes/k2-nano/long.json
  finish 5
fi

if stage 6 "RL again, on 1-, 10- and 50-call tasks (where sampled runs disagree, so there is signal)"; then
  $kimi rl --config recipes/k2-nano/long.json --from $run/long --out $run/rl2 --iterations 3 --tasks 24 --eval-tasks 20 --horizons 1,10,50 --budget 12000 --lr 0.001
  finish 6
fi
policy=$(cat $run/rl2/policy.txt)

if stage 7 "export BF16 and INT4 (compressed-tensors pack-quantized, routed experts, group 32)"; then
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
  finish 7
fi

if stage 8 "evaluate the shipped INT4 model on the tool-use and natural-phrasing suites"; then
  $kimi eval --model models/k2-nano --suite tool-use --out models/k2-nano/eval.json | tee models/k2-nano/eval.md
  $kimi eval --model models/k2-nano --suite natural --out models/k2-nano/eval-natural.json | tee models/k2-nano/eval-natural.md
  finish 8
fi

stamp "9/9 done: models/k2-nano is $(du -sh models/k2-nano | cut -f1)"
