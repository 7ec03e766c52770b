"""ipvslab: a twin of Linux IPVS connection reuse, and a doctor for real nodes."""

__version__ = "0.1.0"
