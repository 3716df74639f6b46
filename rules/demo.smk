# The embedded demo: generated videos + MIMIC-IV-Echo CSVs, and a tiny random-weight V-JEPA 2.
# Included only when demo.enabled is true (config/demo.yaml).


rule demo_data:
    output:
        videos=directory(config["input_dir"]),
        record_list=config["metadata"]["record_list"],
        study_list=config["metadata"]["study_list"],
    params:
        run=script("make_demo.py"),
        out=lambda wc, output: os.path.dirname(output.record_list),
        folders=" ".join(SHARDS),
        per_folder=config["demo"]["per_folder"],
        seed=config["demo"]["seed"],
    log:
        f"{LOG_DIR}/demo_data.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} data --out {params.out:q} --folders {params.folders}"
        " --per_folder {params.per_folder} --seed {params.seed} > {log:q} 2>&1"


rule demo_model:
    output:
        directory(ENCODER["path"]),
    params:
        run=script("make_demo.py"),
        seed=config["demo"]["seed"],
    log:
        f"{LOG_DIR}/demo_model.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} model --out {output:q} --seed {params.seed} > {log:q} 2>&1"
