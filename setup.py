"""Build the two optional C extensions; everything else is in pyproject.toml.

Both are optional: without a C compiler, ``pip install`` still succeeds and l1stream
uses its pure numpy/pyarrow paths (``l1stream --version`` says which are active).
"""

from setuptools import Extension, setup

ZSTD = "l1stream/parquet/vendor/zstd/zstddeclib.c"
FLAGS = ["-O3", "-std=c11", "-fno-strict-aliasing", "-ffp-contract=off"]

setup(ext_modules=[
    Extension("l1stream.exact._kernel", ["l1stream/exact/_kernel.c"], extra_compile_args=FLAGS, optional=True,
              depends=["l1stream/exact/_fold.h", "l1stream/exact/_consumer.h", "l1stream/exact/_profile.h", "l1stream/exact/_profile_block.h"]),
    # zstd's official decompressor (vendored, BSD) compiled in with hidden symbols: no clash with
    # another zstd in the process (pyarrow's, the zstandard package's)
    Extension("l1stream.parquet._pages", ["l1stream/parquet/_pages.c", ZSTD], optional=True,
              extra_compile_args=FLAGS + ["-fvisibility=hidden"], define_macros=[("ZSTDLIB_VISIBLE", ""), ("ZSTDERRORLIB_VISIBLE", "")],
              include_dirs=["l1stream/parquet/vendor/zstd", "l1stream/exact"],
              depends=[f"l1stream/parquet/_{name}.h" for name in ("crc32", "snappy", "thrift", "encodings", "footer", "footer_rules", "lockstep", "metadata")]
              + ["l1stream/parquet/vendor/zstd/zstd.h", "l1stream/exact/_consumer.h"]),
])
