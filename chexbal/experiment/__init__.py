"""Stage 5, experiment: a plan file (experiments/*.toml) in, the fair protocol's tasks out, run
resumably on local processes or Slurm, and the report published."""
