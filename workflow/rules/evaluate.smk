# Every checkpoint, and the blind baseline, on the held-out episodes; then checkpoint retention.
# Where only one job fits at a time (2 cores), a checkpoint's evaluation goes before the next
# period's training (priority), so each success rate is known while training continues.


rule eval:
    wildcard_constraints:
        root=roots("eval"),
    input:
        unpack(inputs("eval")),
    output:
        out_path=report(
            outputs("eval")["out_path"],
            caption="../report/evaluation.rst",
            category="Evaluation",
            subcategory="checkpoints",
        ),
        video_dir=directory(outputs("eval")["video_dir"]),
        **tracking_output("eval"),
    params:
        run_config=run_config("eval"),
        settings=settings("eval"),
    threads: eval_threads
    priority: 1
    resources:
        **EVAL_RESOURCES,
    log:
        log_file("eval"),
    benchmark:
        benchmark_file("eval")
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
    wildcard_constraints:
        root=roots("retention"),
    input:
        unpack(retention_inputs),
    output:
        outputs("retention")["record_out"],
    params:
        run_config=run_config("retention"),
        settings=settings("retention"),
    log:
        log_file("retention"),
    benchmark:
        benchmark_file("retention")
    conda:
        CONDA_ENV
    shell:
        "rdtflow retention --run-config {params.run_config} > {log} 2>&1"


rule baseline:
    wildcard_constraints:
        root=roots("baseline"),
    input:
        unpack(inputs("baseline")),
    output:
        out_path=report(outputs("baseline")["out_path"], caption="../report/evaluation.rst", category="Evaluation",
                        subcategory="baseline"),
        video_dir=directory(outputs("baseline")["video_dir"]),
    params:
        run_config=run_config("baseline"),
        settings=settings("baseline"),
    log:
        log_file("baseline"),
    benchmark:
        benchmark_file("baseline")
    conda:
        CONDA_ENV
    shell:
        "rdtflow baseline --run-config {params.run_config} > {log} 2>&1"


# eval.transfer: a fine-tune's starting weights on its own held-out states (zero-shot), and its
# starting weights and final checkpoint on its pretraining's held-out states (forgetting).


rule transfer:
    wildcard_constraints:
        root=roots("transfer"),
    input:
        unpack(inputs("transfer")),
    output:
        **outputs("transfer"),
    params:
        run_config=run_config("transfer"),
        settings=settings("transfer"),
    threads: eval_threads
    resources:
        **EVAL_RESOURCES,
    log:
        log_file("transfer"),
    benchmark:
        benchmark_file("transfer")
    conda:
        CONDA_ENV
    shell:
        "rdtflow transfer --run-config {params.run_config} > {log} 2>&1"
