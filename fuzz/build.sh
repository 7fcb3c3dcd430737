#!/usr/bin/env bash
# Build l1stream's C extensions with clang + AddressSanitizer + UndefinedBehaviorSanitizer (and
# libFuzzer's coverage hooks) into fuzz/build/, a copy of the package: the installed l1stream is
# untouched.  Needs clang-19 (apt-get install clang-19) and atheris (pip install atheris).
set -euo pipefail
cd "$(dirname "$0")/.."
CC_BIN=${CC_BIN:-clang-19}
rm -rf fuzz/build
mkdir -p fuzz/build
cp -r l1stream setup.py fuzz/build/  # setup.py alone: the extensions (no pyproject: any setuptools builds them)
find fuzz/build/l1stream -name "*.so" -delete
cd fuzz/build
SAN="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize=function -fno-sanitize-recover=undefined"
CC="$CC_BIN" LDSHARED="$CC_BIN -shared" CFLAGS="$SAN -g -O1" LDFLAGS="-fsanitize=address,undefined,fuzzer-no-link" \
    python3 setup.py -q build_ext --inplace 2>&1 | grep -v "^warning\|setuptools\|SetuptoolsDeprecation" || true
ls l1stream/parquet/_pages*.so l1stream/exact/_kernel*.so >/dev/null
echo "fuzz/build: sanitized l1stream.parquet._pages and l1stream.exact._kernel"
