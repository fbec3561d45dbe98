# The self-contained HTML report, with its figures also in `snakemake --report`.


rule report:
    input:
        **inputs("report"),
    output:
        out_html=report(outputs("report")["out_html"], caption="../report/evaluation.rst", category="Report"),
        loss_png=report(outputs("report")["loss_png"], caption="../report/loss.rst", category="Training"),
        success_png=report(outputs("report")["success_png"], caption="../report/success.rst", category="Evaluation"),
    params:
        run_config=run_config("report"),
        settings=settings("report"),
    log:
        log_file("report"),
    benchmark:
        benchmark_file("report")
    conda:
        CONDA_ENV
    shell:
        "rdtflow report --run-config {params.run_config} > {log} 2>&1"
