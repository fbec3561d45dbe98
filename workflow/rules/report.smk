# The self-contained HTML report, with its figures also in `snakemake --report`.


rule report:
    input:
        validation=str(PATHS.validation_report),
        index=str(PATHS.index),
        checkpoints=[str(PATHS.checkpoint(step)) for step in CHECKPOINT_STEPS],
        evaluations=[str(PATHS.evaluation(step)) for step in CHECKPOINT_STEPS],
        baseline=str(PATHS.baseline),
    output:
        html=report(str(PATHS.report), caption="../report/evaluation.rst", category="Report"),
        loss=report(str(PATHS.root / "report" / "loss.png"), caption="../report/loss.rst", category="Training"),
        success=report(str(PATHS.root / "report" / "success.png"), caption="../report/success.rst", category="Evaluation"),
    params:
        settings=settings("report"),
    log:
        log_file("report"),
    shell:
        "rdtflow report --config {params.settings:q} > {log} 2>&1"
