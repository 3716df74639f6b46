"""The extract step (one GPU job per shard): files → batches → model → parts → the shard file."""
