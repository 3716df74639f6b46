# One job per shard: decode in workers, encode in batches, atomic parts, resumable.
# The parts directory is deliberately not a declared output: Snakemake deletes the outputs of a
# failed job, and the parts are what a rerun resumes from.


rule extract:
    input:
        manifest=MANIFEST,
        model=model_inputs(),
        settings_changed=settings_changed,
    output:
        embeddings=EMBEDDINGS,
        errors=ERRORS,
    params:
        run=script("extract.py"),
        input_dir=config["input_dir"],
        parts=PARTS,
        encoder=ENCODER["name"],
        model=MODEL,
        options=encoder_options(),
        num_workers=config["extract"].get("num_workers", "auto"),
        save_every=config["extract"].get("save_every", 10000),
        part_mb=config["extract"].get("part_mb", 512),
        gpu_slots=str(config["extract"].get("gpu_slots", "auto")).replace(" ", ""),
        gpu_lock_dir=(
            f"--gpu_lock_dir={shlex.quote(config['extract']['gpu_lock_dir'])}"
            if config["extract"].get("gpu_lock_dir")
            else ""
        ),
        log_every=config["extract"].get("log_every", 50),
        decode_timeout_s=config["extract"].get("decode_timeout_s", 300),
        max_decoded_gb=config["extract"].get("max_decoded_gb", 4),
        require_gpu="--require_gpu" if config["extract"].get("require_gpu") else "",
    threads: extract_threads()
    log:
        f"{LOG_DIR}/extract/{{shard}}.log",
    conda:
        "../envs/gpu.yaml"
    shell:
        "{params.run} --encoder={params.encoder:q} --model={params.model:q} --encoder_options={params.options:q}"
        " --input_dir={params.input_dir:q} --shard={wildcards.shard:q} --manifest={input.manifest:q}"
        " --output={output.embeddings:q} --errors={output.errors:q} --parts_dir={params.parts:q}"
        " --threads={threads} --num_workers={params.num_workers:q} --save_every={params.save_every:q}"
        " --part_mb={params.part_mb:q} --gpu_slots={params.gpu_slots:q} {params.gpu_lock_dir}"
        " --log_every={params.log_every:q} --decode_timeout_s={params.decode_timeout_s:q}"
        " --max_decoded_gb={params.max_decoded_gb:q} {params.require_gpu}"
        " > {log:q} 2>&1"
