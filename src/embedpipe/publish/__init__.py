"""After validation: each shard staged with its metadata (staged/), the published folder (parquet/)
with its card and file list, and the Hub upload."""
