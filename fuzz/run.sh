#!/usr/bin/env bash
# A bounded fuzz job under ASan + UBSan, after a replay of the regression corpus.
#   bash fuzz/run.sh ci                          CI: a fixed seed and a fixed number of runs per harness,
#                                                so a passing commit passes again (the same inputs)
#   bash fuzz/run.sh [SECONDS_PER_HARNESS]       exploration: random seeds, as long as asked (default 60)
# or run one harness by hand (see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-60}
if [ "$MODE" = "ci" ]; then
    declare -A LIMIT=([pages]="-seed=1 -runs=${L1STREAM_FUZZ_RUNS_PAGES:-400000}"
                      [scan]="-seed=1 -runs=${L1STREAM_FUZZ_RUNS_SCAN:-250}"
                      [consumers]="-seed=1 -runs=${L1STREAM_FUZZ_RUNS_CONSUMERS:-20000}")
else
    declare -A LIMIT=([pages]="-max_total_time=$MODE" [scan]="-max_total_time=$MODE"
                      [consumers]="-max_total_time=$MODE")
fi
bash fuzz/build.sh
python3 fuzz/seeds.py fuzz/corpus >/dev/null
mkdir -p fuzz/findings tests/data/fuzz-regressions/{pages,scan,consumers}
source fuzz/env.sh
status=0
for harness in pages scan consumers; do
    echo "== fuzz: $harness (${LIMIT[$harness]})"
    # replay every kept regression input first (a fixed bug must stay fixed)
    if ls tests/data/fuzz-regressions/$harness/* >/dev/null 2>&1; then
        python3 fuzz/fuzz_$harness.py -runs=0 tests/data/fuzz-regressions/$harness/* > fuzz/findings/replay-$harness.log 2>&1 \
            || { echo "regression input fails: see fuzz/findings/replay-$harness.log"; tail -40 fuzz/findings/replay-$harness.log; status=1; }
    fi
    python3 fuzz/fuzz_$harness.py ${LIMIT[$harness]} -timeout=20 -rss_limit_mb=3072 \
        -artifact_prefix=fuzz/findings/$harness- -print_final_stats=1 fuzz/corpus/$harness \
        > fuzz/findings/$harness.log 2>&1 || { echo "finding in $harness:"; tail -60 fuzz/findings/$harness.log; status=1; }
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|cov: " fuzz/findings/$harness.log | tail -3 || true
done
exit $status
