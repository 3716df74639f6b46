# MyJEPA pretraining (pretrain.enabled): one job on pretrain.gpus GPUs, on every shard's ECGs
# (discover's manifests) or on pretrain.data's .npy dumps; <run>/pretrain/final.pt is the ecg_jepa
# encoder extract embeds with; pretrain_curves draws loss.png from its metrics.csv.
# checkpoints/ is deliberately not a declared output: Snakemake deletes a failed job's outputs, and
# a rerun (a retry, a requeue after SIGTERM) resumes from the newest checkpoint there.


rule pretrain:
    input:
        data=pretrain_inputs(),
    output:
        model=PRETRAIN_MODEL,
        metrics=report(PRETRAIN_METRICS, caption="../report/pretrain.rst", category="Pretraining"),
    params:
        run=pretrain_command(),
        data=pretrain_data(),
        input_dir=config["input_dir"],
        out=lambda wc, output: os.path.dirname(output.model),
        config=PRETRAIN["config"],
        options=pretrain_options(),
    threads: pretrain_threads()
    resources:
        gpu=PRETRAIN["gpus"],
    log:
        f"{LOG_DIR}/pretrain.log",
    conda:
        "../envs/gpu.yaml"
    shell:
        "{params.run} --data {params.data:q} --input_dir={params.input_dir:q} --out={params.out:q}"
        " --config={params.config:q} --options={params.options:q} > {log:q} 2>&1"


# Its own small job: a drawing that fails never deletes the trained model (Snakemake removes a
# failed job's outputs), and a run trained before loss.png existed gets one without training again.
rule pretrain_curves:
    input:
        PRETRAIN_METRICS,
    output:
        report(PRETRAIN_CURVES, caption="../report/pretrain.rst", category="Pretraining"),
    params:
        run=script("pretrain_curves.py"),
    log:
        f"{LOG_DIR}/pretrain_curves.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --metrics {input:q} --out {output:q} > {log:q} 2>&1"
