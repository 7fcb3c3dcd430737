"""Build the two optional C extensions; everything else is in pyproject.toml.

Both are optional: without a C compiler, ``pip install`` still succeeds and l1stream
uses its pure numpy/pyarrow paths (``l1stream --version`` says which are active).
"""

from setuptools import Extension, setup

FLAGS = ["-O3", "-std=c11", "-fno-strict-aliasing", "-ffp-contract=off"]

setup(ext_modules=[
    Extension("l1stream.exact._kernel", ["l1stream/exact/_kernel.c"], extra_compile_args=FLAGS, optional=True),
    Extension("l1stream.parquet._pages", ["l1stream/parquet/_pages.c"], extra_compile_args=FLAGS, optional=True,
              depends=[f"l1stream/parquet/_{name}.h" for name in ("crc32", "snappy", "thrift", "encodings")]),
])
