# One self-contained dataset file per shard: train-0000i-of-0000N.parquet, metadata joined.


rule parquet:
    input:
        embeddings=lambda wc: EMBEDDINGS.format(shard=SHARD_OF_DATASET[wc.part]),
        metadata=metadata_inputs(),
        demo=demo_inputs("record_list", "study_list"),
    output:
        DATASET,
    params:
        run=script("parquet.py"),
        shard=lambda wc: SHARD_OF_DATASET[wc.part],
        kind=config["metadata"]["kind"],
        lists=(
            f"--record_list {config['metadata']['record_list']!r} --study_list {config['metadata']['study_list']!r}"
            if config["metadata"]["kind"] == "mimic_iv_echo"
            else ""
        ),
    log:
        f"{LOG_DIR}/parquet/{{part}}.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --embeddings {input.embeddings:q} --output {output:q}"
        " --shard {params.shard} --metadata {params.kind} {params.lists} > {log:q} 2>&1"
