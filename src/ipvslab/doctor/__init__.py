"""ipvslab doctor: read what a real node shows (/proc, ipvsadm, sysctl, kube-proxy)."""
