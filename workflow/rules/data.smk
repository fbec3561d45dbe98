# Demonstrations -> validated index -> split -> full-step manifest; encoders and language cache.
# Each rule declares its stage's files (rdtflow/stages.py) and hands the stage its run file.


rule demos:
    wildcard_constraints:
        root=roots("demos"),
    output:
        directory(outputs("demos")["out_dir"]),
    params:
        run_config=run_config("demos"),
        settings=settings("demos"),
    log:
        log_file("demos"),
    benchmark:
        benchmark_file("demos")
    conda:
        CONDA_ENV
    shell:
        "rdtflow demos --run-config {params.run_config} > {log} 2>&1"


rule validate:
    wildcard_constraints:
        root=roots("validate"),
    input:
        demo_inputs,
    threads: validate_threads
    output:
        validated=outputs("validate")["validated_out"],
        report=report(outputs("validate")["report_out"], caption="../report/validation.rst", category="Data"),
    params:
        run_config=run_config("validate"),
        settings=settings("validate"),
    log:
        log_file("validate"),
    benchmark:
        benchmark_file("validate")
    conda:
        CONDA_ENV
    shell:
        "rdtflow validate --run-config {params.run_config} > {log} 2>&1"


rule split:
    wildcard_constraints:
        root=roots("split"),
    input:
        unpack(inputs("split")),
    output:
        **outputs("split"),
    params:
        run_config=run_config("split"),
        settings=settings("split"),
    log:
        log_file("split"),
    benchmark:
        benchmark_file("split")
    conda:
        CONDA_ENV
    shell:
        "rdtflow split --run-config {params.run_config} > {log} 2>&1"


rule manifest:
    wildcard_constraints:
        root=roots("manifest"),
    input:
        unpack(inputs("manifest")),
    output:
        **outputs("manifest"),
    params:
        run_config=run_config("manifest"),
        settings=settings("manifest"),
    log:
        log_file("manifest"),
    benchmark:
        benchmark_file("manifest")
    conda:
        CONDA_ENV
    shell:
        "rdtflow manifest --run-config {params.run_config} > {log} 2>&1"


rule encoders:
    wildcard_constraints:
        root=roots("encoders"),
    output:
        vision=directory(outputs("encoders")["vision_dir"]),
        text=directory(outputs("encoders")["text_dir"]),
    params:
        run_config=run_config("encoders"),
        settings=settings("encoders"),
    log:
        log_file("encoders"),
    benchmark:
        benchmark_file("encoders")
    conda:
        CONDA_ENV
    shell:
        "rdtflow encoders --run-config {params.run_config} > {log} 2>&1"


rule encode_lang:
    wildcard_constraints:
        root=roots("encode_lang"),
    input:
        unpack(inputs("encode_lang")),
    output:
        **outputs("encode_lang"),
    params:
        run_config=run_config("encode_lang"),
        settings=settings("encode_lang"),
    log:
        log_file("encode_lang"),
    benchmark:
        benchmark_file("encode_lang")
    conda:
        CONDA_ENV
    shell:
        "rdtflow encode-lang --run-config {params.run_config} > {log} 2>&1"


rule encode_images:
    wildcard_constraints:
        root=roots("encode_images"),
    input:
        unpack(inputs("encode_images")),
    output:
        **outputs("encode_images"),
    params:
        run_config=run_config("encode_images"),
        settings=settings("encode_images"),
    log:
        log_file("encode_images"),
    benchmark:
        benchmark_file("encode_images")
    conda:
        CONDA_ENV
    shell:
        "rdtflow encode-images --run-config {params.run_config} > {log} 2>&1"
