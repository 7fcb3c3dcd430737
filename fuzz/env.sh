# Source this: the environment a sanitized fuzz run needs (see fuzz/README.md).
ATHERIS_LIB=$(python3 -c "import atheris; print(atheris.path())")
export LD_PRELOAD="$ATHERIS_LIB/asan_with_fuzzer.so"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:malloc_limit_mb=2048"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONMALLOC=malloc
export PYTHONPATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/build${PYTHONPATH:+:$PYTHONPATH}"
