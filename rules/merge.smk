# merge_all: every shard in one artifact (EchoJEPA's {key: tensor} .pt and a memory-mappable .npy).


rule merge_all:
    input:
        expand(EMBEDDINGS, shard=SHARDS),
    output:
        **MERGED,
    log:
        f"{LOG_DIR}/merge_all.log",
    conda:
        "../envs/embedpipe.yaml"
    shell:
        "{PYTHON:q} {SCRIPTS}/merge_all.py --shards {input:q} --pt {output.pt:q} --npy {output.npy:q}"
        " --keys {output.index:q} > {log:q} 2>&1"
