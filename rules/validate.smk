# Checks and the validation report (with the pretraining and evaluation sections when those steps
# run); a failed check fails this rule (and so `all` and `upload`).


rule validate:
    input:
        manifests=expand(MANIFEST, shard=SHARDS),
        dataset=STAGED_FILES,
        errors=expand(ERRORS, shard=SHARDS),
        # the run's other steps, each a section of the report when enabled
        pretraining=[PRETRAIN_METRICS, PRETRAIN_CURVES] if PRETRAIN["enabled"] else [],
        evaluation=[EVALUATION["metrics.json"], EVALUATION["roc.png"]] if EVALUATE["enabled"] else [],
    output:
        metrics=report(METRICS, caption="../report/validate.rst", category="Validation"),
        html=report(f"{VALIDATION_DIR}/report.html", caption="../report/validate.rst", category="Validation"),
        norms=report(f"{VALIDATION_DIR}/norms.png", caption="../report/norms.rst", category="Validation"),
        spectrum=report(f"{VALIDATION_DIR}/pca_spectrum.png", caption="../report/pca.rst", category="Validation"),
        scatter=report(f"{VALIDATION_DIR}/pca_scatter.png", caption="../report/pca.rst", category="Validation"),
        cosine=report(f"{VALIDATION_DIR}/cosine.png", caption="../report/cosine.rst", category="Validation"),
    params:
        run=script("validate.py"),
        shards=json.dumps(SHARDS),
        lists=lambda wc, input: shard_lists("validate", manifests=input.manifests, dataset_files=input.dataset,
                                            error_files=input.errors),
        out_dir=lambda wc, output: os.path.dirname(output.metrics),
        title=shlex.quote(DATASET_TITLE),
        settings=validate_settings(),  # the validate block: one JSON value, the script's --settings
        made_with=lambda wc: json.dumps(config_made_with(), sort_keys=True),
        sections=lambda wc, input: "".join(f" --{name} {shlex.join(input[name])}" for name in
                                           ("pretraining", "evaluation") if input[name]),
    log:
        f"{LOG_DIR}/validate.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --shards_json={params.shards:q} @{params.lists:q} --out_dir {params.out_dir:q}"
        " --title={params.title} --made_with={params.made_with:q} --settings={params.settings:q}{params.sections}"
        " > {log:q} 2>&1"
