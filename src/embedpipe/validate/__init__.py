"""The validate step: checks on every shard, the metrics and the report."""
