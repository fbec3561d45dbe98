# Demonstrations -> validated index -> split -> full-step manifest; encoders and language cache.


rule demos:
    output:
        directory(str(PATHS.demos)),
    params:
        settings=settings("demos"),
    log:
        log_file("demos"),
    shell:
        "rdtflow demos --config {params.settings:q} > {log} 2>&1"


rule validate:
    input:
        demo_inputs(),
    output:
        validated=str(PATHS.validated),
        report=report(str(PATHS.validation_report), caption="../report/validation.rst", category="Data"),
    params:
        settings=settings("validate"),
    log:
        log_file("validate"),
    shell:
        "rdtflow validate --config {params.settings:q} > {log} 2>&1"


rule split:
    input:
        str(PATHS.validated),
    output:
        str(PATHS.index),
    params:
        settings=settings("split"),
    log:
        log_file("split"),
    shell:
        "rdtflow split --config {params.settings:q} > {log} 2>&1"


rule manifest:
    input:
        str(PATHS.index),
    output:
        manifest=str(PATHS.manifest),
        stats=str(PATHS.stats),
    params:
        settings=settings("manifest"),
    log:
        log_file("manifest"),
    shell:
        "rdtflow manifest --config {params.settings:q} > {log} 2>&1"


rule encoders:
    output:
        vision=directory(str(PATHS.vision_encoder)),
        text=directory(str(PATHS.text_encoder)),
    params:
        settings=settings("encoders"),
    log:
        log_file("encoders"),
    shell:
        "rdtflow encoders --config {params.settings:q} > {log} 2>&1"


rule encode_lang:
    input:
        index=str(PATHS.index),
        text_encoder=str(TEXT_DIR),
    output:
        str(PATHS.language),
    params:
        settings=settings("encode_lang"),
    log:
        log_file("encode_lang"),
    shell:
        "rdtflow encode-lang --config {params.settings:q} > {log} 2>&1"


rule encode_images:
    input:
        manifest=str(PATHS.manifest),
        vision_encoder=str(VISION_DIR),
    output:
        str(PATHS.image_features),
    params:
        settings=settings("encode_images"),
    log:
        log_file("encode_images"),
    shell:
        "rdtflow encode-images --config {params.settings:q} > {log} 2>&1"
