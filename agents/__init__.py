"""Agents: policies that choose rotations and glimpses (``policies``), and what stable-baselines3
needs to read this suite's small views (``extractors``)."""
