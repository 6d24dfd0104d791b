"""Tensor plumbing shared by every room: array conversion and checks, thread counts, allocator
settings (opt-in), a value-keyed per-thread cache."""
