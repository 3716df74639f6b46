# Compatibility exports in the formats of the scripts embedpipe replaces; explicit targets, never in
# `all`. Each family lists its own (encoders/<family>/__init__.py); every family's target exists in
# every run, so asking for another family's export fails naming the key, not "no rule".
for EXPORT_FAMILY, EXPORT in all_exports():
    EXPORT_OUT = f"{RUN_DIR}/export/{EXPORT.output}"
    if EXPORT.per_shard:
        # One folder per shard (per taxon in DeepEarth's layout), so a failed shard reruns alone.

        rule:
            name:
                f"{EXPORT.target}_shard"
            input:
                lambda wc, f=EXPORT_FAMILY, e=EXPORT: export_inputs(f, e, [EMBEDDINGS.format(shard=wc.shard)]),
            output:
                directory(f"{EXPORT_OUT}/{{shard}}"),
            params:
                run=script("export.py"),
                target=EXPORT.target,
            log:
                f"{LOG_DIR}/{EXPORT.target}/{{shard}}.log",
            conda:
                "../envs/cpu.yaml"
            shell:
                "{params.run} --target={params.target:q} --out={output:q} {input:q} > {log:q} 2>&1"

        rule:
            name:
                EXPORT.target
            input:
                expand(f"{EXPORT_OUT}/{{shard}}", shard=SHARDS),

    else:

        rule:
            name:
                EXPORT.target
            input:
                lambda wc, f=EXPORT_FAMILY, e=EXPORT: export_inputs(f, e, expand(EMBEDDINGS, shard=SHARDS)),
            output:
                directory(EXPORT_OUT) if EXPORT.directory else EXPORT_OUT,
            params:
                run=script("export.py"),
                target=EXPORT.target,
            log:
                f"{LOG_DIR}/{EXPORT.target}.log",
            conda:
                "../envs/cpu.yaml"
            shell:
                "{params.run} --target={params.target:q} --out={output:q} {input:q} > {log:q} 2>&1"
