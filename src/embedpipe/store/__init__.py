"""On-disk formats every step shares: atomic writes, the Parquet footer and writer options, sidecars,
the .pt writer and merge_all, export names, what a shard records it was made with, report pages."""
