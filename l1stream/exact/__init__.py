"""The exact core: partial states, their merge laws, and the exact kernels.

Knows nothing of files, Dask or clusters: it takes arrays and returns exact,
picklable states (sums as integers of 2**-1074, or rationals) that merge
associatively and commutatively.  Imports only numpy, pyarrow arrays and
:mod:`l1stream.errors`.
"""
