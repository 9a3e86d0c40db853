"""The forward keeper: a small process of the hub's own user that holds the notebook forwards,
so that a hub restart (SIGTERM, upgrade, crash) does not break the browser's connections to
the notebooks. The hub asks it over a Unix socket in a private folder (wire.py); the process
is daemon.py, the hub's side client.py.
"""
