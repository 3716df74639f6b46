"""The planner: a trial run's own timings and file sizes, extrapolated to the full run's file counts
(GPU-hours, wall time, disk, memory, GPU types, shards and save_every), and the full run's card
section that holds the prediction against what the run then took."""
