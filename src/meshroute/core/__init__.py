"""Pure domain logic shared by server and agent: no I/O, no framework imports."""
