# `snakemake status --configfile <run.yaml>`: where each shard of this run is (state, files done, rate,
# ETA, errors, last update, host, SLURM job), read from the results folder: the same table as
# `python -m embedpipe status results/<run>` (docs/status.md). It fails (exit 1) when a shard failed.
# Run on the login node (a local rule, never submitted). While another `snakemake` of the same run is
# going (the one that submitted the array), add `--nolock`: the lock would not stop this rule (it has
# no input or output), but Snakemake 8 removes the whole .snakemake/locks folder when it unlocks at its
# end, the running instance's lock files with it (tests/workflow/test_status_rule.py).


localrules:
    status,


rule status:
    message:
        f"where each shard of {RUN} is (state, files done, rate, ETA, errors)"
    params:
        run_dir=RUN_DIR,
        shards=json.dumps(SHARDS),
    log:
        f"{LOG_DIR}/status.txt",  # the last table printed
    conda:
        "../envs/cpu.yaml"
    shell:
        # pipefail: the rule's status is the table's (1: a shard failed), not tee's
        "set -o pipefail; python -m embedpipe status {params.run_dir:q} --shards-json={params.shards:q} | tee {log:q}"
