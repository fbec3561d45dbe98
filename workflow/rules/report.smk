# The self-contained HTML report and the run's provenance.json, with the figures also in `snakemake --report`.


rule report:
    wildcard_constraints:
        root=roots("report"),
    input:
        unpack(inputs("report")),
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


# A sweep's comparison of its runs: results/{sweep}/index.html (rdtflow/report/compare.py).
if SWEEP:

    rule compare:
        input:
            [path for run in comparison_files(config, RUNS).inputs["runs"] for key, paths in run.items()
             if key not in ("label", "values", "facts") for path in (paths if isinstance(paths, list) else [paths])],
        output:
            **comparison_files(config, RUNS).outputs,
        params:
            run_config=str(comparison_paths(config).job_config("compare")),
        log:
            str(comparison_paths(config).job_log("compare")),
        conda:
            CONDA_ENV
        shell:
            "rdtflow compare --run-config {params.run_config} > {log} 2>&1"
