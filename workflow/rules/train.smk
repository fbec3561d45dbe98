# The plan (launch line, batch layout, memory estimate) is recorded before training starts.


rule plan:
    input:
        manifest=str(PATHS.manifest),
    output:
        str(PATHS.plan),
    params:
        settings=settings("plan"),
    log:
        log_file("plan"),
    shell:
        "rdtflow plan --config {params.settings:q} > {log} 2>&1"


# One job per checkpoint period: evaluation of checkpoint N starts while N+1 trains, and a
# killed job never costs the checkpoints already written.


rule train:
    input:
        unpack(previous_checkpoint),
        plan=str(PATHS.plan),
        manifest=str(PATHS.manifest),
        stats=str(PATHS.stats),
        language=str(PATHS.language),
        vision_encoder=str(VISION_DIR),
        image_features=image_features(),
    output:
        directory(str(PATHS.root / "train" / "checkpoint-{step}")),
    params:
        command=train_shell_command,
    threads: TRAIN_RESOURCES["cpus_per_task"]
    resources:
        **TRAIN_RESOURCES,
        runtime=train_runtime,
    log:
        log_file("train/checkpoint-{step}"),
    shell:
        "{params.command} > {log} 2>&1"
