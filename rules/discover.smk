# One scan of the input, one manifest per shard. Unchanged manifests keep their mtime, so after
# `snakemake discover --forcerun discover` only shards whose file list changed run again.


rule discover:
    input:
        demo_inputs("data"),
    output:
        expand(MANIFEST, shard=SHARDS),
    params:
        run=script("discover.py"),
        input_dir=lambda wc, input: input[0] if input else config["input_dir"],
        manifest_dir=lambda wc, output: os.path.dirname(output[0]),
        extensions=" ".join(config["extensions"]),
        by=SHARDING["by"],
        folders=" ".join(SHARDS) if SHARDING["by"] == "folder" else "",
        num_shards=len(SHARDS),
        hf=(
            f"--hf_dataset {shlex.quote(HF_DATASET['path'])} --hf_split {shlex.quote(HF_DATASET.get('split', 'train'))}"
            f" --hf_column {shlex.quote(HF_DATASET.get('column', 'ecg_paths'))}"
            if HF_DATASET.get("path")
            else ""
        ),
    log:
        f"{LOG_DIR}/discover.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --input_dir {params.input_dir:q} --manifest_dir {params.manifest_dir:q}"
        " --extensions {params.extensions} --by {params.by} --folders {params.folders}"
        " --num_shards {params.num_shards} {params.hf} > {log:q} 2>&1"
