"""ipvslab lab: the same script-mode scenarios on a real kernel's IPVS.

One boot (QEMU via virtme-ng, or this host) runs a whole probe list through the
guest runner, inside network namespaces laid out as a Kubernetes node; its
per-step trace has the model's columns, so comparing the two is a join.

    kernel_image   a Debian kernel package, fetched and unpacked into a cache
    vm             one boot: the runner on a plan, JSON lines back, clean-up
    node           the namespace node, read off the model's cluster; kube-proxy's rules
    probes         script steps as runner commands
    guest_runner   the guest side (standard library only)
    capture        runner lines as the model's trace rows
    compare        model vs kernel, step by step
"""
