# One self-contained dataset file per shard, metadata joined, staged for the parquet rule, which builds the published folder.


rule staged:
    input:
        embeddings=EMBEDDINGS,
        metadata=metadata_inputs(),
        hf_rows=HF_ROWS,
        pca=PCA_INPUTS,
        patterns=PATTERNS_FILE,
    output:
        STAGED,
    params:
        run=script("staged.py"),
        # The extract job kept its finished shard as hard links here in case Snakemake deleted its
        # outputs after a late kill. This job starts only once Snakemake recorded that extract as
        # successful, so the copy has served: drop it, so deleting an output later frees its space.
        finished=lambda wc: f"{PARTS.format(shard=wc.shard)}.finished",
        kind=config["metadata"]["kind"],
        lists=metadata_flags(),
        hf_rows=optional_file_flag("hf_rows"),
        pca=optional_file_flag("pca"),
    log:
        f"{LOG_DIR}/staged/{{shard}}.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --embeddings={input.embeddings:q} --output={output:q}"
        " --shard={wildcards.shard:q} --metadata={params.kind:q} {params.lists} {params.hf_rows} {params.pca}"
        " --identifying_patterns_file={input.patterns:q}"
        " > {log:q} 2>&1"
        " && rm -rf -- {params.finished:q}"
