# Hard checks on the finished dataset; a failed check fails this rule (and so `all`).


rule validate:
    input:
        manifests=expand(MANIFEST, shard=SHARDS),
        dataset=DATASET_FILES,
        errors=expand(ERRORS, shard=SHARDS),
    output:
        report(METRICS, caption="../report/validate.rst", category="Validation"),
    params:
        run=script("validate.py"),
        shards=" ".join(SHARDS),
        expected_dim=expected_dim_arg(),
        max_error_fraction=config["validate"].get("max_error_fraction", 0.01),
    log:
        f"{LOG_DIR}/validate.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --shards {params.shards} --manifests {input.manifests:q}"
        " --dataset_files {input.dataset:q} --error_files {input.errors:q} {params.expected_dim}"
        " --max_error_fraction {params.max_error_fraction} --metrics {output:q} > {log:q} 2>&1"
