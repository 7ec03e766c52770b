"""What a run measured: its records as tables, the time series and the summary."""
