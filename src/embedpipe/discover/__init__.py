"""The discover step: scan input_dir once, one manifest per shard, every exclusion counted."""
