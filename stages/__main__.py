"""`python -m stages NAME`: the form dvc.yaml uses, so experiments run their own copy of the code."""

from stages.cli import main

main(prog_name="python -m stages")
