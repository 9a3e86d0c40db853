"""`python -m hubdash`: the dashboard service, as the hub starts it (see hubdash.app)."""

from .app import main

main()
