"""The cluster twin: kube-proxy, pods and clients driving the kernel twin."""
