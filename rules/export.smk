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


rule export_ecg_json:
    input:
        expand(EMBEDDINGS, shard=SHARDS),
    output:
        directory(f"{RUN_DIR}/export/ecgfounder_json"),
    params:
        run=script("export_ecg_json.py"),
        check=lambda wc: require_encoder("ecgfounder", "export_ecg_json"),
    log:
        f"{LOG_DIR}/export_ecg_json.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --out_dir {output:q} {input:q} > {log:q} 2>&1"


rule export_pt_shard:
    input:
        EMBEDDINGS,
    output:
        directory(f"{RUN_DIR}/export/deepearth_pt/{{shard}}"),
    params:
        run=script("export_pt.py"),
        check=lambda wc: require_tokens("export_pt"),
    log:
        f"{LOG_DIR}/export_pt/{{shard}}.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --out_dir {output:q} {input:q} > {log:q} 2>&1"


rule export_pt:
    # One folder per shard (per taxon in DeepEarth's layout), so a failed shard reruns alone.
    input:
        expand(f"{RUN_DIR}/export/deepearth_pt/{{shard}}", shard=SHARDS),
