# MyJEPA pretraining (pretrain.enabled): one GPU job on every shard's ECGs (discover's manifests) or
# on pretrain.data's .npy dumps; <run>/pretrain/final.pt is the ecg_jepa encoder extract embeds with.
# checkpoints/ is deliberately not a declared output: Snakemake deletes a failed job's outputs, and
# a rerun (a retry, a requeue after SIGTERM) resumes from the newest checkpoint there.


rule pretrain:
    input:
        data=pretrain_inputs(),
    output:
        model=PRETRAIN_MODEL,
        metrics=report(PRETRAIN_METRICS, caption="../report/pretrain.rst", category="Pretraining"),
    params:
        run=script("pretrain.py"),
        data=pretrain_data(),
        input_dir=config["input_dir"],
        out=lambda wc, output: os.path.dirname(output.model),
        config=PRETRAIN["config"],
        options=pretrain_options(),
    threads: pretrain_threads()
    log:
        f"{LOG_DIR}/pretrain.log",
    conda:
        "../envs/gpu.yaml"
    shell:
        "{params.run} --data {params.data:q} --input_dir={params.input_dir:q} --out={params.out:q}"
        " --config={params.config:q} --options={params.options:q} > {log:q} 2>&1"
