# Every checkpoint, and the blind baseline, on the held-out episodes.


rule eval:
    input:
        checkpoint=str(PATHS.root / "train" / "checkpoint-{step}"),
        index=str(PATHS.index),
        language=str(PATHS.language),
        vision_encoder=str(VISION_DIR),
    output:
        report(
            str(PATHS.root / "eval" / "checkpoint-{step}.json"),
            caption="../report/evaluation.rst",
            category="Evaluation",
            subcategory="checkpoints",
        ),
    params:
        settings=settings("eval"),
    threads: config["eval"]["threads"]
    log:
        log_file("eval/checkpoint-{step}"),
    shell:
        "rdtflow eval --config {params.settings:q} --checkpoint {input.checkpoint} --out {output} > {log} 2>&1"


rule baseline:
    input:
        index=str(PATHS.index),
        stats=str(PATHS.stats),
    output:
        report(str(PATHS.baseline), caption="../report/evaluation.rst", category="Evaluation", subcategory="baseline"),
    params:
        settings=settings("baseline"),
    log:
        log_file("baseline"),
    shell:
        "rdtflow baseline --config {params.settings:q} --out {output} > {log} 2>&1"
