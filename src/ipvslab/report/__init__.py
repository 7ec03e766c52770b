"""`ipvslab report`: one self-contained HTML page (plotly figures inlined) for a run
or a reproduce output folder."""
