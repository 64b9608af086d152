#!/usr/bin/env bash
# The swarm orchestrator in miniature (issue 17, item 3), from the shipped k2-nano:
#   synthesize (wide swarm tasks mixed into the usual mix) → SFT from models/k2-nano → kimi rl with PARL's reward
#   → held-out wide evaluation, single agent vs swarm, at 10/40/100 cities.
# Usage: bash recipes/k2-nano-swarm/build.sh      (work in runs/k2-nano-swarm; nothing in models/ is replaced)
# A run-length smoke of every stage: bash recipes/k2-nano-swarm/smoke.sh
# Resumable: run it again after an interruption. Finished stages are skipped (runs/k2-nano-swarm/.done/), and a cut-off
# SFT continues from its last saved state (kimi train --resume, bit-exact).
set -euo pipefail
cd "$(dirname "$0")/../.."
run=runs/k2-nano-swarm
./kimi --version >/dev/null   # builds the CLI once, before the long steps
kimi="dotnet .build/cli/kimi.dll"
stages=5
source recipes/stages.sh

if stage 1 "synthesize: the k2-nano mix (10% long-horizon, natural phrasing on half the short tasks) plus 25% wide swarm tasks
       (5–100 training-split cities; the orchestrator's conversation and two of its sub-agents' each)"; then
  $kimi synthesize --out $run/data --count 40000 --seed 51 --long-share 0.1 --natural-share 0.5 \
    --wide-share 0.25 --wide-max-items 100 --wide-sub-agents 2 --template recipes/k2-nano/chat_template.jinja
  finish 1
fi

if stage 2 "SFT from models/k2-nano (bf16) on the mixed data; seq_len 3072 so a 100-city orchestrator example fits whole"; then
  $kimi train --resume --config recipes/k2-nano-swarm/sft.json
  finish 2
fi

if stage 3 "RL: three quarters of the sampled tasks are wide swarm tasks rewarded by PARL
       (λ1·r_parallel + λ2·r_finish + r_perf, λ1 = 0.3 and λ2 = 0.2 annealed linearly to 0; sub-agents frozen on the SFT checkpoint)"; then
  $kimi rl --config recipes/k2-nano-swarm/sft.json --from $run/sft --out $run/rl --iterations 4 --tasks 24 --samples 4 --steps 4 \
    --eval-tasks 12 --horizons 1,3 --budget 8000 \
    --wide-share 0.75 --wide-items 5,10,20,40 --parl-lambda-parallel 0.3 --parl-lambda-finish 0.2 --parl-anneal 1
  finish 3
fi
policy=$(cat $run/rl/policy.txt)

if stage 4 "held-out wide tasks (cities never in wide training data): single agent vs swarm orchestrator, side by side"; then
  $kimi eval --model "$policy" --suite wide --items 10,40,100 --tasks 4 --out $run/eval-wide.json --transcripts $run/eval-wide.jsonl \
    | tee $run/eval-wide.md
  # The shipped k2-nano on the same tasks (it was never taught spawn_agents): the starting point.
  $kimi eval --model models/k2-nano --suite wide --items 10,40,100 --tasks 4 --out $run/eval-wide-k2-nano.json | tee $run/eval-wide-k2-nano.md
  finish 4
fi

if stage 5 "export BF16 and INT4 to $run/export (copy to models/k2-nano-swarm to ship it the way k2-nano is shipped)"; then
  rm -rf $run/export && mkdir -p $run/export
  $kimi quantize --model "$policy" --out $run/export/bf16 --quant bf16
  $kimi quantize --model $run/export/bf16 --out $run/export/int4 --quant int4
  cp $run/data/knowledge_base.json $run/export/int4/
  stamp "done"
  finish 5
fi