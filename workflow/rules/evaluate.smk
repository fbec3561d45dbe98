# Every checkpoint, and the blind baseline, on the held-out episodes; then checkpoint retention.


rule eval:
    input:
        unpack(inputs("eval")),
    output:
        report(
            outputs("eval")["out_path"],
            caption="../report/evaluation.rst",
            category="Evaluation",
            subcategory="checkpoints",
        ),
    params:
        run_config=run_config("eval"),
        settings=settings("eval"),
    threads: EVAL_THREADS
    log:
        log_file("eval"),
    conda:
        CONDA_ENV
    shell:
        "rdtflow eval --run-config {params.run_config} > {log} 2>&1"


# train.checkpoints_total_limit: once a checkpoint is evaluated, delete the weights of those
# that are neither the best by held-out success nor the latest (rdtflow/train/retention.py).
# Deleting a few files needs no cluster job, so on Slurm it runs where Snakemake runs.


localrules:
    retention,


rule retention:
    input:
        unpack(retention_inputs),
    output:
        outputs("retention")["record_out"],
    params:
        run_config=run_config("retention"),
        settings=settings("retention"),
    log:
        log_file("retention"),
    conda:
        CONDA_ENV
    shell:
        "rdtflow retention --run-config {params.run_config} > {log} 2>&1"


rule baseline:
    input:
        **inputs("baseline"),
    output:
        report(outputs("baseline")["out_path"], caption="../report/evaluation.rst", category="Evaluation",
               subcategory="baseline"),
    params:
        run_config=run_config("baseline"),
        settings=settings("baseline"),
    log:
        log_file("baseline"),
    conda:
        CONDA_ENV
    shell:
        "rdtflow baseline --run-config {params.run_config} > {log} 2>&1"
