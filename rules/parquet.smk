# The published folder: rebuilt from this run's staged shard files once validation passed, so it holds
# exactly this run's files (shards that hold rows, numbered; the README.md card) and loads with
# `datasets.load_dataset`. Its file list is what `snakemake upload` pushes, and nothing else.


rule parquet:
    input:
        staged=STAGED_FILES,
        metrics=METRICS,  # exists only when validation passed
        exclusions=EXCLUSIONS,
        pca=PCA_INPUTS,  # published beside the shards, as pca.npz
        # counted in the card's Disk section (the shard files already precede staged)
        embeddings=expand(EMBEDDINGS, shard=SHARDS),
        errors=expand(ERRORS, shard=SHARDS),
        merged=MERGED_IN_RUN,  # merge.in_default_run: written first, so the card counts them
    output:
        # Not directory(DATASET_DIR): Snakemake would put its .snakemake_timestamp file in the folder.
        # The script rebuilds the whole folder; the card stands for it.
        card=CARD,
        file_list=DATASET_FILE_LIST,
    params:
        run=script("parquet.py"),
        lists=lambda wc, input: shard_lists("parquet", staged=input.staged, embeddings=input.embeddings,
                                            errors=input.errors),
        folder=lambda wc, output: os.path.dirname(output.card),
        dataset=as_json(replace(CARD_OPTIONS, pretty_name=DATASET_TITLE)),  # the dataset block: one JSON value
        # a trial is never uploaded: its card loads the local folder
        load_name=(not TRIAL_FILES and config["upload"].get("repo_id")) or os.path.abspath(DATASET_DIR),
        pca=optional_file_flag("pca"),
        # a model's folder in a repo of several is read by its config
        load_config=f"--load_config={shlex.quote(UPLOAD_CONFIG)}" if UPLOAD_CONFIG and not TRIAL_FILES else "",
        # every merged file's name: counted where one exists (an earlier `snakemake merge_all`'s too)
        merged=" ".join(shlex.quote(path) for path in MERGED.values()),
        # a full run's card holds the newest trial's plan (results/<run>-trial<N>/plan.json) against the
        # run's own extract timings (logs/<run>/extract/) and files
        plan="" if TRIAL_FILES else f"--plan_for={shlex.quote(RUN_DIR)} --extract_logs={shlex.quote(LOG_DIR)}",
    log:
        f"{LOG_DIR}/parquet.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} @{params.lists:q} --folder={params.folder:q} --metrics={input.metrics:q}"
        " --exclusions={input.exclusions:q} --dataset={params.dataset:q} --load_name={params.load_name:q}"
        " --file_list={output.file_list:q} {params.pca} {params.load_config} {params.plan}"
        " --merged {params.merged} > {log:q} 2>&1"
