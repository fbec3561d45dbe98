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
        settings=settings("train"),
        resume=resume_argument,
        launch=accelerate_launch_args(config["hardware"]),
    threads: config["hardware"]["cpu_threads"]
    log:
        log_file("train/checkpoint-{step}"),
    shell:
        "accelerate launch {params.launch} -m rdtflow.cli train --config {params.settings:q} "
        "--until-step {wildcards.step} {params.resume} > {log} 2>&1"
