# The self-contained HTML report and the run's provenance.json, with the figures also in `snakemake --report`.


rule report:
    input:
        **inputs("report"),
    output:
        out_html=report(outputs("report")["out_html"], caption="../report/evaluation.rst", category="Report"),
        training_png=report(outputs("report")["training_png"], caption="../report/training.rst", category="Training"),
        success_png=report(outputs("report")["success_png"], caption="../report/success.rst", category="Evaluation"),
        episode_lengths_png=report(outputs("report")["episode_lengths_png"], caption="../report/episode_lengths.rst",
                                   category="Data"),
        provenance_out=outputs("report")["provenance_out"],
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
