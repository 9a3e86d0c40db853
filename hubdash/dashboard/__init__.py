"""hubdash's dashboard: a JupyterHub service showing users their batch-job servers.

Talks to the hub's REST API only; never SSH or scheduler commands of its own.
"""
