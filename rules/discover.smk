# One scan of the input, one manifest per shard. After `snakemake discover --forcerun discover` only
# the shards whose file list changed run again: each shard records a digest of its manifest, and the
# DAG compares it (changed_shards), since Snakemake gives every output a new mtime.


rule discover:
    input:
        input_dir=input_dir_input,
        # ancient: a transport for the list, not a trigger (a new folder's shard has no manifest yet:
        # that makes discover run; a new folder in a group is found by a rescan, as a new file is)
        folders=ancient(FOLDER_LIST),
    output:
        manifests=expand(MANIFEST, shard=SHARDS),
        exclusions=EXCLUSIONS,
    params:
        run=script("discover.py"),
        input_dir=lambda wc, input: input.input_dir,
        manifest_dir=lambda wc, output: os.path.dirname(output.manifests[0]),
        extensions=config["extensions"],
        by=SHARDING.by,
        max_shards=SHARDING.max_shards,
        all_folders="--all_folders" if SHARDING.by == "folder" and not SHARDING.folders else "",
        num_shards=len(SHARDS),
        limit=f"--limit={TRIAL_FILES}" if TRIAL_FILES else "",
        hf=HF_FLAGS,
    log:
        f"{LOG_DIR}/discover.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        # The summary of what was left out goes to the log and, on stdout, to the console.
        "{params.run} --input_dir={params.input_dir:q} --manifest_dir={params.manifest_dir:q}"
        " --extensions {params.extensions:q} --by={params.by:q} --folders_file={input.folders:q}"
        " {params.all_folders} --num_shards={params.num_shards:q} --max_shards={params.max_shards:q}"
        " --exclusions={output.exclusions:q} {params.limit} {params.hf}"
        " 2> {log:q} | tee -a {log:q}"


if HF_ROWS:

    # The hf_dataset rows that listed each file, for the staged step. A rule of its own, not a
    # discover output: a run made before it existed reruns this and the cheap CPU steps after it,
    # not discover and so every extract job. Rewritten only when it changes, as the manifests are.
    rule hf_rows:
        input:
            expand(MANIFEST, shard=SHARDS),
        output:
            HF_ROWS,
        params:
            run=script("discover.py"),
            input_dir=config["input_dir"],
            hf=HF_FLAGS,
        log:
            f"{LOG_DIR}/hf_rows.log",
        conda:
            "../envs/cpu.yaml"
        shell:
            "{params.run} --hf_rows_only={output:q} --input_dir={params.input_dir:q} {params.hf} > {log:q} 2>&1"
