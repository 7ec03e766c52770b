"""The kernel twin: a pure model of Linux IPVS (net/netfilter/ipvs/).

Nothing in this package does I/O, reads a clock or draws random numbers: time is
an integer number of milliseconds handed in by the caller, and every choice the
kernel makes is reproduced from the inputs.
"""
