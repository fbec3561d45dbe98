"""Report stage: turn a run's validation, training and evaluation outputs into one HTML page.

`collect` reads the files other stages wrote, `figures` draws the loss and success plots,
`html` assembles the self-contained page that `snakemake --report` and a reviewer both read.
"""
