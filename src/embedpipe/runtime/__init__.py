"""What every job runs under: per-file decode deadlines and worker control, stop signals, the shard
lock, one-line error text, run information (logging, versions, the submission environment)."""
