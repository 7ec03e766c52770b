"""`ipvslab reproduce`: every symptom of the seed documents, measured, with what cures it."""
