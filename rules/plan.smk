# A trial run's plan of its full run (extract.limit: the trial's runs only): its own timings and file sizes
# extrapolated to the file counts discover found. After parquet, whose files it measures; printed on the
# console, written to plan.json and plan.md. The full run's card holds it against what the run took.
# Local: a few seconds of reading files, and its launch flags are this launch's (a cluster job's own
# Snakemake would read its own command line, not the profile's jobs and runtime).


localrules:
    plan,


rule plan:
    input:
        file_list=DATASET_FILE_LIST,  # the whole trial has run: its every folder is measured
        manifests=expand(MANIFEST, shard=SHARDS),
        exclusions=EXCLUSIONS,
        embeddings=expand(EMBEDDINGS, shard=SHARDS),
        merged=MERGED_IN_RUN,
    output:
        plan=PLAN,
        markdown=PLAN_MARKDOWN,
    params:
        run=script("plan.py"),
        lists=lambda wc, input: shard_lists("plan", shards=SHARDS, manifests=input.manifests,
                                            merged=list(MERGED.values())),
        full_run=config["run"],
        run_dir=lambda wc, output: os.path.dirname(output.plan),
        log_dir=LOG_DIR,
        dataset=DATASET_DIR,
        encoder=ENCODER["name"],
        options=encoder_options_json(),
        limit=TRIAL_FILES,
        save_every=EXTRACT.save_every,
        shard_by=SHARDING.by,
        num_shards=len(SHARDS),
        max_error_fraction=from_block(ValidationConfig, config.get("validate") or {}, "validate").max_error_fraction,
        # where the full run writes (its free space): the folder above the trial's
        results_dir=lambda wc, output: os.path.dirname(os.path.dirname(output.plan)),
        launch=lambda wc: plan_launch_flags(),
    log:
        f"{LOG_DIR}/plan.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        # The plan goes to the console (stdout) and the log; anything else to the log.
        "{params.run} @{params.lists:q} --run={params.full_run:q} --run_dir={params.run_dir:q}"
        " --log_dir={params.log_dir:q} --exclusions={input.exclusions:q} --dataset_folder={params.dataset:q}"
        " --encoder={params.encoder:q} --encoder_options={params.options:q} --limit={params.limit:q}"
        " --save_every={params.save_every:q} --shard_by={params.shard_by:q} --num_shards={params.num_shards:q}"
        " --max_error_fraction={params.max_error_fraction:q} --results_dir={params.results_dir:q}"
        " {params.launch} --out={output.plan:q} --markdown={output.markdown:q}"
        " 2> {log:q} | tee -a {log:q}"
