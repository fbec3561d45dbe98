# One job per checkpoint period: evaluation of checkpoint N starts while N+1 trains, and a
# killed job never costs the checkpoints already written.


rule train:
    input:
        unpack(previous_checkpoint),
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
        launch=accelerate_launch_args(config["train"]),
    threads: config["train"]["threads"]
    log:
        log_file("train/checkpoint-{step}"),
    shell:
        "accelerate launch {params.launch} -m rdtflow.cli train --config {params.settings:q} "
        "--until-step {wildcards.step} {params.resume} > {log} 2>&1"
