#!/bin/bash
# From a login node: run a config whose `cluster:` section submits workers through dask-jobqueue.
#   jobs/slurm/submit-jobqueue.sh jobs/slurm/jobqueue.yaml [--set key=value ...]
set -euo pipefail
config="${1:?usage: submit-jobqueue.sh CONFIG [l1stream run options]}"
shift
exec l1stream run "$config" --json "$@"
