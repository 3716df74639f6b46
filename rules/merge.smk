# merge_all: every shard in one artifact (EchoJEPA's {key: tensor} .pt and a memory-mappable .npy);
# export_folder_pt: the EchoJEPA script's per-folder .pt files, one job per shard. Explicit targets.


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


rule folder_pt:
    input:
        EMBEDDINGS,
    output:
        FOLDER_PT,
    params:
        run=script("merge_all.py"),
        strip=folder_pt_prefix,
    log:
        f"{LOG_DIR}/folder_pt/{{shard}}.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --folder_pt --shards {input:q} --pt {output:q} {params.strip} > {log:q} 2>&1"


rule export_folder_pt:
    input:
        expand(FOLDER_PT, shard=SHARDS),
