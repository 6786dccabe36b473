"""`meshroute agent`: the peer daemon that makes a Linux host a member of the mesh.

link (management, backoff, identity) -> engine (desired state from the map and health) ->
reconcilers (diff against what the agent owns) -> system modules (the only code that touches
the kernel, wireguard-go, sockets). `sim` runs many links without the system layer.
"""
