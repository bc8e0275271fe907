"""Agents: policies that choose rotations and glimpses, using seq-JEPA representations."""
