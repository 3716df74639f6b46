# The embedded demos, included only when demo.enabled is true:
#   demo.kind: video (config/demo.yaml)       generated videos + MIMIC-IV-Echo CSVs, a tiny random V-JEPA 2
#   demo.kind: audio (config/demo_audio.yaml) a VersaFace-shaped WAV tree, a tiny random Metis stack
#   demo.kind: ecg   (config/demo_ecg*.yaml)  MIMIC-IV-ECG WFDB + Philips XML, tiny ECGFounder / ECG-JEPA
#   demo.kind: image (config/demo_image.yaml) a DeepEarth taxon tree of drawn photos, the tiny V-JEPA 2
DEMO_MODEL_COMMAND = {"video": "model", "audio": "audio-model", "ecg": "ecg-model", "image": "model"}[DEMO_KIND]
DEMO_DATA_COMMAND = {"audio": "audio-data", "ecg": "ecg-data", "image": "image-data"}.get(DEMO_KIND)


if DEMO_KIND == "video":

    rule demo_data:
        output:
            videos=directory(config["input_dir"]),
            record_list=config["metadata"]["record_list"],
            study_list=config["metadata"]["study_list"],
        params:
            run=script("make_demo.py"),
            out=lambda wc, output: os.path.dirname(output.record_list),
            folders=json.dumps(SHARDS),
            per_folder=config["demo"]["per_folder"],
            seed=config["demo"]["seed"],
        log:
            f"{LOG_DIR}/demo_data.log",
        conda:
            "../envs/cpu.yaml"
        shell:
            "{params.run} data --out={params.out:q} --folders={params.folders:q}"
            " --per_folder={params.per_folder:q} --seed={params.seed:q} > {log:q} 2>&1"

else:

    rule demo_files:
        output:
            files=directory(config["input_dir"]),
            labels=DEMO_LABELS,
        params:
            run=script("make_demo.py"),
            folders=json.dumps(SHARDS),
            command=DEMO_DATA_COMMAND,
            per_folder=config["demo"]["per_folder"],
            seed=config["demo"]["seed"],
            labels=lambda wc, output: f"--labels={shlex.quote(output.labels[0])}" if DEMO_LABELS else "",
        log:
            f"{LOG_DIR}/demo_data.log",
        conda:
            "../envs/cpu.yaml"
        shell:
            "{params.run} {params.command} --out={output.files:q} --folders={params.folders:q}"
            " --per_folder={params.per_folder:q} --seed={params.seed:q} {params.labels} > {log:q} 2>&1"


# With pretrain.enabled (config/demo_pretrain.yaml) the pretrain rule makes encoder.path instead.
if not PRETRAIN["enabled"]:

    rule demo_model:
        output:
            ENCODER["path"] if DEMO_KIND == "ecg" else directory(ENCODER["path"]),
        params:
            run=script("make_demo.py"),
            command=DEMO_MODEL_COMMAND,
            out=lambda wc, output: os.path.dirname(output[0]) if DEMO_KIND == "ecg" else output[0],
            seed=config["demo"]["seed"],
        log:
            f"{LOG_DIR}/demo_model.log",
        conda:
            "../envs/cpu.yaml"
        shell:
            "{params.run} {params.command} --out={params.out:q} --seed={params.seed:q} > {log:q} 2>&1"
