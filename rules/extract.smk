# One job per shard: decode in workers, encode in batches, atomic parts, resumable.
# The parts directory is deliberately not a declared output: Snakemake deletes the outputs of a
# failed job, and the parts are what a rerun resumes from.


rule extract:
    input:
        # ancient: discover gives every manifest a new mtime, changed or not; a shard whose files
        # changed is told by its stamp (settings_changed: the manifest against the shard's digest of it)
        manifest=ancient(MANIFEST),
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
        options=encoder_options_json(),
        settings=as_json(EXTRACT),  # the extract block: one JSON value, the script's --settings
    threads: extract_threads()
    log:
        f"{LOG_DIR}/extract/{{shard}}.log",
    benchmark:
        f"{LOG_DIR}/extract/{{shard}}.benchmark.tsv"
    conda:
        "../envs/gpu.yaml"
    shell:
        "{params.run} --encoder={params.encoder:q} --model={params.model:q} --encoder_options={params.options:q}"
        " --input_dir={params.input_dir:q} --shard={wildcards.shard:q} --manifest={input.manifest:q}"
        " --output={output.embeddings:q} --errors={output.errors:q} --parts_dir={params.parts:q}"
        " --threads={threads} --settings={params.settings:q}"
        " > {log:q} 2>&1"
