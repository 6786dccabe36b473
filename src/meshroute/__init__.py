"""meshroute: route a WireGuard mesh into the networks around it."""

__version__ = "0.1.0"
