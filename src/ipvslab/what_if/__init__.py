"""`ipvslab doctor --what-if`: a node's capture turned into a cluster-twin scenario, and
the changes an SRE is about to make (a rollout, a scale-out, a sysctl, a kernel, a
dataplane) run on it to predict what they do to that node's traffic now."""
