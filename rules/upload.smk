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
        settings=as_json(UPLOAD),  # the upload block: one JSON value, the script's --settings
        credentialed="--credentialed" if config["dataset"]["credentialed"] else "",  # never public
    log:
        f"{LOG_DIR}/upload.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --file_list {input.file_list:q} --folder {params.folder:q} --settings={params.settings:q}"
        " {params.credentialed}"
        " --receipt {output:q} > {log:q} 2>&1"
