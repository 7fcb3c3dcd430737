"""The Parquet page reader: l1stream's own C decoder for flat float64 columns (``_pages.c``)
and its Python glue (:mod:`l1stream.parquet.pages`); pyarrow reads everything else."""
