# merge_all: every shard in one artifact (EchoJEPA's {key: tensor} .pt and a memory-mappable .npy).


rule merge_all:
    input:
        expand(EMBEDDINGS, shard=SHARDS),
    output:
        **MERGED,
    params:
        run=script("merge_all.py"),
    log:
        f"{LOG_DIR}/merge_all.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --shards {input:q} --pt {output.pt:q} --npy {output.npy:q}"
        " --keys {output.index:q} > {log:q} 2>&1"
