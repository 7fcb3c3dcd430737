#!/bin/bash
# Run one l1stream job from cron: no two runs at once (flock), logs with timestamps, and l1stream's
# exit code passed through (0 ok, 2 config, 3 data, 4 gate, 5 skipped files; 75 = already running).
#
#   l1stream-cron.sh CONFIG [l1stream run options...]
#
# Environment: L1STREAM_LOCK (lock file, default /tmp/l1stream-<config name>.lock),
#              L1STREAM_LOG_DIR (default ./logs), L1STREAM (the command, default l1stream).
set -uo pipefail
config="${1:?usage: l1stream-cron.sh CONFIG [l1stream run options]}"
shift
name="$(basename "${config%.*}")"
lock="${L1STREAM_LOCK:-/tmp/l1stream-$name.lock}"
log_dir="${L1STREAM_LOG_DIR:-./logs}"
mkdir -p "$log_dir"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
log="$log_dir/$name-$stamp.log"
result="$log_dir/$name-$stamp.json"

exec 9>"$lock"
if ! flock --nonblock 9; then
    echo "$(date -u +%FT%TZ) l1stream-cron: $name is already running (lock $lock); skipping" | tee -a "$log" >&2
    exit 75
fi

echo "$(date -u +%FT%TZ) l1stream-cron: start $config" >> "$log"
${L1STREAM:-l1stream} run "$config" --json --quiet "$@" > "$result" 2>> "$log"
status=$?
echo "$(date -u +%FT%TZ) l1stream-cron: exit $status, result $result" >> "$log"
exit $status
