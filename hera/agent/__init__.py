"""The agent process and its control plane.

``main`` runs in the agent's own process (and imports Taichi through the
family runtime); ``launch`` and ``client`` run in controllers and must never
import Taichi.
"""
