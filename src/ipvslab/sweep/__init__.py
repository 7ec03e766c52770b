"""`ipvslab sweep SWEEP.yaml`: many runs of one scenario over a grid or a list of
changed fields, one table row per run, on local processes or a Dask cluster."""
