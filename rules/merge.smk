# merge_all: every shard in one file, in the formats merge.formats lists (EchoJEPA's {key: tensor} .pt; the
# memory-mappable .npy and its key index); each is one more full copy of the embeddings, so a plain run
# writes them only when merge.in_default_run. export_folder_pt: the EchoJEPA script's per-folder .pt
# files, one job per shard. Explicit targets.
MERGE_FLAGS = {"pt": "pt", "npy": "npy", "index": "keys"}


rule merge_all:
    input:
        expand(EMBEDDINGS, shard=SHARDS),
    output:
        **MERGED_OUTPUTS,
    params:
        run=script("merge_all.py"),
        # what merge.formats asks for; a merged file it no longer lists is removed (never left stale)
        outputs=" ".join(f"--{MERGE_FLAGS[name]}={shlex.quote(path)}" for name, path in MERGED_OUTPUTS.items()),
        unasked=" ".join(shlex.quote(path) for name, path in MERGED.items() if name not in MERGED_OUTPUTS),
    log:
        f"{LOG_DIR}/merge_all.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --shards {input:q} {params.outputs} --remove {params.unasked} > {log:q} 2>&1"


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
