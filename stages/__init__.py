"""Pipeline stages: one module per DVC stage, each a thin Typer command over the fpnpipe library."""
