"""Report stage: turn a run's validation, training and evaluation outputs into one HTML page.

`collect` reads the files other stages wrote, `figures` draws the plots, `provenance` records
what made the run, `format` writes the numbers, and `page` renders templates/report.html.j2,
the self-contained page a reviewer reads (its figures also go to `snakemake --report`).
"""
