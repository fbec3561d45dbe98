# rdtflow: raw robot demonstrations -> fine-tuned RDT checkpoints -> held-out evaluation -> report.
# Every rule is a thin call of the `rdtflow` CLI; see README.md and docs/formats.md.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless the user gives a run config of their own: a --configfile
# replaces it whole (keys of the default never leak into a paper's run), while --config
# key=value alone still adjusts the default.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_outputs(),
