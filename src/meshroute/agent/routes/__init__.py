"""Client routes: HA groups of the routes this peer receives, which routing peer carries each
(scoring, stickiness), the user's selection (exit nodes, deselected networks), and the plan that
turns them into kernel routes (handlers) and WireGuard AllowedIPs (watchers)."""
