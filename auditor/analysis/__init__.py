"""Pure analyses shared by several checks (no I/O): facts in, plain values out."""
