"""hera: build, run and manage long-lived agents with spiking brains that learn as they run.

Importing this package must stay cheap: the one-shot commands import only
what they use, and nothing here imports Taichi, numpy or xonsh.
"""

__version__ = "0.1.0"
