"""WireGuard: the pure peer model and diff, the reconciler, and two system backends (kernel
WireGuard over netlink, userspace `wireguard-go` over its UAPI socket)."""
