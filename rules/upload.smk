# `snakemake upload`: push the validated Parquet folder and its card to the Hub. Never part of `all`.
# Runs on the submit host (compute nodes often have no internet); the token comes from HF_TOKEN or
# the Hub's login cache, never from the config.


localrules:
    upload,


rule upload:
    input:
        unpack(upload_inputs),  # the dataset folder's file list, as the parquet rule wrote it, and metrics.json
    output:
        UPLOAD_RECEIPT,
    params:
        run=script("upload.py"),
        folder=DATASET_DIR,
        repo_id=config["upload"].get("repo_id") or "",
        flags=upload_flags(),
    log:
        f"{LOG_DIR}/upload.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --file_list {input.file_list:q} --folder {params.folder:q} --repo_id {params.repo_id:q}"
        " {params.flags}"
        " --receipt {output:q} > {log:q} 2>&1"
