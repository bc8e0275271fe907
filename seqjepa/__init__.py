"""seq-JEPA: the world model trained on (view, action) streams from the envs.

Modules: ``rollouts`` and ``iebench`` (numpy only: recorded datasets and 3DIEBench folders),
``resnet``, ``model``, ``data``, ``stream``, ``probes``, ``metrics``, ``train``. Importing this
package imports nothing heavy, so collecting data (which writes ``rollouts``) needs no torch.
"""
