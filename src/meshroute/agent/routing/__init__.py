"""Policy routing: the agent's own table (7120) and the rules that send traffic to it."""
