"""The agent's DNS parts for domain routes (network type 3).

On a **client**, an interceptor (`interceptor.Interceptor`) becomes the host's resolver: queries for
names of its domain routes go to the chosen routing peer's forwarder over the overlay, and the
addresses in the answer are routed (kernel /32 or /128 and the routing peer's AllowedIP) before
the answer reaches the application; every other query goes to the host's original name servers
unchanged. `hostconfig` points the host at the interceptor and puts everything back.

On a **routing peer**, a forwarder (`forwarder.Forwarder`) on the overlay address answers only the
names of the routes it serves, with the host's resolver, and hands every address it resolved to the
engine (the route's nftables set) before it answers.

Pure parts: `match` (patterns and the most specific match), `answers` (addresses and TTL of a
response, CNAME chains attributed to the question), `learned` (the addresses learned per group,
KeepRoute, TTL expiry, in-use postponement, the cap). `transport` has the sockets.
"""
