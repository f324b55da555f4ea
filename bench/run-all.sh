#!/usr/bin/env bash
# Every issue #6 benchmark, one after the other, as docs/benchmarks.md reports them.
#
#   make bench                      # the published sizes (about 90 minutes on 2 cores)
#   BENCH_SIZE=smoke make bench     # small sizes, a few minutes: checks the harnesses
#   BENCH_ONLY="throughput peers" make bench   # a subset (names below)
#
# Run it on an idle machine: each benchmark records the load average before and after in
# its bench/results/*.json, and a figure measured under load is not one to publish. Every
# script starts the broker and the services it needs and stops them; the output of each is
# kept in bench/results/run-all-<UTC>/<name>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SIZE=${BENCH_SIZE:-full}
ONLY=${BENCH_ONLY:-"limit cost throughput drain peers submission precision precision-core failover rebuild scale"}
OUT=bench/results/run-all-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"

if [[ $SIZE == smoke ]]; then
  TASKS=5000 DRAIN_TASKS=(5000) RUNS=1 PRECISION_TASKS=1000 SECONDS_=15 SCALE_TASKS=20000 LIMIT_RECORDS=100000
  RATES=25,50,100 REBUILD_ARGS=(--events 20000)
else
  TASKS=100000 DRAIN_TASKS=(20000 100000) RUNS=3 PRECISION_TASKS=10000 SECONDS_=60 SCALE_TASKS=1000000 LIMIT_RECORDS=500000
  RATES=25,50,100,200,400 REBUILD_ARGS=()
fi

step() {
  # step NAME CMD...: run CMD if NAME is selected; its output goes to $OUT/${LOG_AS:-NAME}.log
  local name=$1 log="$OUT/${LOG_AS:-$1}.log"
  shift
  [[ " $ONLY " == *" $name "* ]] || return 0
  echo "== $name: $* ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
  if ! "$@" >"$log" 2>&1; then
    echo "!! $name failed: see $log" >&2
    tail -20 "$log" >&2
    FAILED+=("$name")
  fi
  tail -n 25 "$log" | sed -n '/^|/p'
}
FAILED=()

step limit $PY bench/kafka_limit.py --runs "$RUNS" --records "$LIMIT_RECORDS"
step cost $PY bench/execution_cost.py --executions 2000 --runs "$RUNS"
step throughput $PY bench/throughput.py --tasks "$TASKS" --runs "$RUNS" --chart
# Issue #12's drain: N tasks created ahead, all due at one instant, at the shipped
# concurrency (8); with the monitor (its count ends the run) and without it.
for n in "${DRAIN_TASKS[@]}"; do
  due_in=$((30 + n / 2000))  # creation runs at about 2,000 tasks/s: all created before due
  LOG_AS=drain-$n step drain $PY bench/throughput.py --tasks "$n" \
    --due-in "$due_in" --runs "$RUNS" --concurrency 8
  LOG_AS=drain-$n-no-monitor step drain $PY bench/throughput.py --tasks "$n" \
    --due-in "$due_in" --runs "$RUNS" --concurrency 8 --no-monitor
  # the peer on the same N, enqueued first, then drained (make bench-deps)
  LOG_AS=drain-$n-dramatiq step drain $PY bench/peers/dramatiq_noop.py --tasks "$n" \
    --runs "$RUNS" --prefill
done
step peers bash -c "$PY bench/peers/dramatiq_noop.py --tasks $TASKS --runs $RUNS \
  && $PY bench/peers/celery_noop.py --tasks $TASKS --runs $RUNS"
step submission $PY bench/submission_latency.py --rates "$RATES" --search --runs "$RUNS" --chart
# The target rate (10,000 fires/s) and a tenth of it, each against APScheduler; the chart
# is of the target rate (the last --chart run).
step precision bash -c "$PY bench/precision.py --tasks $((PRECISION_TASKS / 10)) \
  --seconds $SECONDS_ --runs $RUNS && $PY bench/peers/apscheduler_precision.py \
  --jobs $((PRECISION_TASKS / 10)) --seconds $SECONDS_ --runs $RUNS \
  && $PY bench/peers/compare.py > $OUT/compare-tenth.log \
  && $PY bench/precision.py --tasks $PRECISION_TASKS --seconds $SECONDS_ --runs $RUNS --chart \
  && $PY bench/peers/apscheduler_precision.py --jobs $PRECISION_TASKS --seconds $SECONDS_ \
  --runs $RUNS"
# The scheduler alone at the target rate (no executor or monitor): its own lateness.
step precision-core $PY bench/precision.py --tasks "$PRECISION_TASKS" --seconds "$SECONDS_" \
  --runs "$RUNS" --scheduler-only
step failover $PY bench/failover.py --runs "$RUNS" --session-timeout-ms 3000
step rebuild $PY bench/rebuild.py "${REBUILD_ARGS[@]}" --runs "$RUNS"
step scale $PY bench/scale.py --tasks "$SCALE_TASKS" --every 1h --steady 20 --runs "$RUNS"
[[ " $ONLY " == *" peers "* || " $ONLY " == *" precision "* ]] &&
  $PY bench/peers/compare.py | tee "$OUT/compare.log"

if ((${#FAILED[@]})); then
  echo "failed: ${FAILED[*]} (logs in $OUT)" >&2
  exit 1
fi
echo "all done; logs in $OUT, results in bench/results/"
