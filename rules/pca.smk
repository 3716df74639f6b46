# pca.components: a PCA fitted on every shard's embeddings (pca.npz, published beside the dataset),
# applied to each row by the staged step as `embedding_pca`.


rule pca_fit:
    input:
        expand(EMBEDDINGS, shard=SHARDS),
    output:
        PCA_FILE,
    params:
        run=script("pca_fit.py"),
        components=PCA_COMPONENTS,
        at_most="--at_most" if TRIAL_FILES else "",  # a trial's few rows: as many components as they allow
    log:
        f"{LOG_DIR}/pca_fit.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --shards {input:q} --components={params.components} {params.at_most} --out={output:q}"
        " > {log:q} 2>&1"
