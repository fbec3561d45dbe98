"""rdtflow: raw robot demonstrations -> fine-tuned RDT checkpoints -> held-out evaluation -> report.

One subpackage per pipeline stage (data, model, train, evaluate, sim, report); `rdtflow.cli`
wires them into one command per stage, and the Snakefile runs those commands with caching.
"""
