# Compatibility exports in the formats of the scripts embedpipe replaces; explicit targets, never in `all`.


rule export_json:
    input:
        expand(EMBEDDINGS, shard=SHARDS),
    output:
        f"{RUN_DIR}/export/semantic_audio_embeddings.json",
    params:
        run=script("export_json.py"),
        check=lambda wc: require_encoder("metis", "export_json"),
    log:
        f"{LOG_DIR}/export_json.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --out {output:q} {input:q} > {log:q} 2>&1"
