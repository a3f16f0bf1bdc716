"""Taichi building blocks that families compose, and the one place Taichi is initialised.

Importing this package imports Taichi: only agent processes, benchmarks and
tests may do it, never the controller (a process that initialised Taichi
cannot safely fork, and a GPU probe in-process can segfault).
"""
