# The plan (batch layout, model, memory estimate) is recorded before training starts, from the
# encoded instructions' real length, and every training job follows it.


rule plan:
    wildcard_constraints:
        root=roots("plan"),
    input:
        unpack(inputs("plan")),
    output:
        **outputs("plan"),
    params:
        run_config=run_config("plan"),
        settings=settings("plan"),
    log:
        log_file("plan"),
    benchmark:
        benchmark_file("plan")
    conda:
        CONDA_ENV
    shell:
        "rdtflow plan --run-config {params.run_config} > {log} 2>&1"


# One job per checkpoint period: evaluation of checkpoint N starts while N+1 trains, and a
# killed job never costs the checkpoints already written.


rule train:
    wildcard_constraints:
        root=roots("train"),
    input:
        unpack(inputs("train")),
    output:
        checkpoint_out=directory(outputs("train")["checkpoint_out"]),
        **tracking_output("train"),
    params:
        command=train_shell_command,
        settings=settings("train"),
    threads: train_threads
    resources:
        **TRAIN_RESOURCES,
        runtime=train_runtime,
    log:
        log_file("train"),
    benchmark:
        benchmark_file("train")
    conda:
        CONDA_ENV
    shell:
        "{params.command} > {log} 2>&1"


# A run that starts from this one (model.pretrained: {config, checkpoint}) reads its chosen
# checkpoint in the official layout, as it would read RDT-1B (rdtflow/pretraining.py).


rule export:
    wildcard_constraints:
        root="|".join(re.escape(root) for root in EXPORTS) or "(?!)",
        label=r"final|best|checkpoint-\d+",
    input:
        unpack(export_inputs),
    output:
        out_dir=directory(str(PATTERN.export("{label}"))),
    params:
        run_config=export_run_config,
    log:
        str(PATTERN.job_log("export-{label}")),
    conda:
        CONDA_ENV
    shell:
        "rdtflow export --run-config {params.run_config} > {log} 2>&1"
