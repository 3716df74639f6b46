# The dataset card: README.md beside the Parquet files, so the folder is a Hugging Face dataset as is.


rule card:
    input:
        dataset=DATASET_FILES,
        metrics=METRICS,
    output:
        CARD,
    params:
        run=script("card.py"),
        dataset=shlex.quote(json.dumps(DATASET_INFO)),
        load_name=shlex.quote(config["upload"].get("repo_id") or os.path.abspath(f"{RUN_DIR}/parquet")),
    log:
        f"{LOG_DIR}/card.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --dataset_files {input.dataset:q} --metrics {input.metrics:q}"
        " --dataset {params.dataset} --load_name {params.load_name} --output {output:q} > {log:q} 2>&1"
