# `snakemake doctor --configfile <run.yaml>` (with --profile profiles/slurm: as a SLURM job on a GPU
# node, with the GPU resources the profile gives extract): what an extract job of this run will find
# there, printed and kept in logs/<run>/doctor.txt. It fails (exit 1) when the run needs what is
# missing: encoder.device cuda and no GPU, a decoder of its media, results or logs not writable.
# No output file: asked for by name, it runs every time; the plain run never asks for it.


rule doctor:
    params:
        run=script("doctor.py"),
        config=doctor_config(),
    log:
        f"{LOG_DIR}/doctor.txt",
    conda:
        "../envs/gpu.yaml"
    shell:
        # pipefail: the job's status is the doctor's, not tee's (common.smk's shell prefix drops Snakemake's)
        "set -o pipefail; {params.run} --config-json={params.config:q} 2>&1 | tee {log:q}"
