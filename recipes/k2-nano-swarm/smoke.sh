#!/usr/bin/env bash
# Smoke-sized run of every stage of build.sh (each under ~3 minutes on two busy cores): proves the commands work end to
# end. Its numbers are smoke numbers — 80 SFT steps teach k2-nano the formats, not the skill.
set -euo pipefail
cd "$(dirname "$0")/../.."
run=runs/k2-nano-swarm-smoke
./kimi --version >/dev/null
kimi="dotnet .build/cli/kimi.dll"
t() { local s=$(date +%s); "$@"; echo "  ($(( $(date +%s) - s )) s)"; }

# 1. data: a wide-heavy mix (small tasks, so examples fit seq_len 1024), and an orchestrator-only mix
t $kimi synthesize --out $run/data-wide --count 400 --seed 43 --long-share 0.05 --natural-share 0.5 --wide-share 0.6 \
  --wide-max-items 10 --wide-sub-agents 1 --template recipes/k2-nano/chat_template.jinja
t $kimi synthesize --out $run/data-orch --count 300 --seed 44 --long-share 0 --natural-share 0.5 --wide-share 0.9 \
  --wide-max-items 10 --wide-sub-agents 0 --template recipes/k2-nano/chat_template.jinja
# 2. SFT from models/k2-nano: 40 steps on each mix
t $kimi train --config recipes/k2-nano-swarm/smoke-sft.json
t $kimi train --config recipes/k2-nano-swarm/smoke-sft2.json
# 3. RL with PARL on wide tasks only (2 iterations, 3 tasks × 3 samples)
t $kimi rl --config recipes/k2-nano-swarm/smoke-sft2.json --from $run/sft2 --out $run/rl --iterations 2 --tasks 3 --samples 3 \
  --steps 1 --eval-tasks 2 --horizons 1 --wide-share 1 --wide-items 5,10
# 4. held-out wide eval, single agent vs swarm
t $kimi eval --model "$(cat $run/rl/policy.txt)" --suite wide --items 5,10 --tasks 2 --out $run/eval-wide.json --transcripts $run/eval-wide.jsonl
