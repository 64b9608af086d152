# Resumable recipe stages, sourced by recipes/*/build.sh after they set run (the work folder) and stages (how many).
# stage N "what it does": true when stage N still has to run (and says so); finish N marks it done in $run/.done/.
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start ))s] $*"; }
mkdir -p "$run/.done"
stage() { if [ -e "$run/.done/$1" ]; then stamp "$1/$stages already done: $2"; return 1; fi; stamp "$1/$stages $2"; }
finish() { touch "$run/.done/$1"; }
