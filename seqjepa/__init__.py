"""seq-JEPA: the world model trained on (view, action) streams from the envs (see issue 4)."""
