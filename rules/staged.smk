# One self-contained dataset file per shard, metadata joined, staged for the parquet rule, which builds the published folder.


if JOINED:

    # The run-wide tables read once, each shard's slice written: staged reads only its own.
    rule joined:
        input:
            manifests=expand(MANIFEST, shard=SHARDS),
            metadata=metadata_inputs(),
            hf_rows=HF_ROWS,
        output:
            expand(JOINED[0], shard=SHARDS),
        params:
            run=script("joined.py"),
            out=lambda wc, output: os.path.dirname(output[0]),
            kind=config["metadata"]["kind"],
            lists=metadata_flags(),
            hf_rows=optional_file_flag("hf_rows"),
        log:
            f"{LOG_DIR}/joined.log",
        conda:
            "../envs/cpu.yaml"
        shell:
            "{params.run} --manifests {input.manifests:q} --output_dir={params.out:q} --metadata={params.kind:q}"
            " {params.lists} {params.hf_rows} > {log:q} 2>&1"


rule staged:
    input:
        embeddings=EMBEDDINGS,
        joined=JOINED,
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
        joined=optional_file_flag("joined"),
        pca=optional_file_flag("pca"),
    log:
        f"{LOG_DIR}/staged/{{shard}}.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --embeddings={input.embeddings:q} --output={output:q}"
        " --shard={wildcards.shard:q} --metadata={params.kind:q} {params.joined} {params.pca}"
        " --identifying_patterns_file={input.patterns:q}"
        " > {log:q} 2>&1"
        " && rm -rf -- {params.finished:q}"
