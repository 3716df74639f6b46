# The evaluation: a linear probe and cosine k-NN on the frozen embeddings against labels (a labels
# table or PTB-XL), from the staged dataset files; metrics.json, the ROC plot and its report page.


rule evaluate:
    input:
        dataset=STAGED_FILES,
        labels=evaluation_inputs,
    output:
        metrics=report(EVALUATION["metrics.json"], caption="../report/evaluate.rst", category="Evaluation"),
        roc=report(EVALUATION["roc.png"], caption="../report/evaluate.rst", category="Evaluation"),
        html=report(EVALUATION["report.html"], caption="../report/evaluate.rst", category="Evaluation"),
    params:
        run=script("evaluate.py"),
        settings=evaluation_settings(),
        out_dir=lambda wc, output: os.path.dirname(output.metrics),
        title=DATASET_TITLE,
    threads: 4
    log:
        f"{LOG_DIR}/evaluate.log",
    conda:
        "../envs/cpu.yaml"
    shell:
        "{params.run} --dataset_files {input.dataset:q} --settings={params.settings:q} --out_dir={params.out_dir:q}"
        " --title={params.title:q} --threads={threads} > {log:q} 2>&1"
