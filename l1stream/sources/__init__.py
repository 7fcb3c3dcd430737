"""What a source is: file discovery (local and fsspec), hive partition keys, filters,
and the embedded demo dataset."""
