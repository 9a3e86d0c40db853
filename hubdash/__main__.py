"""`python -m hubdash`: the dashboard service, as the hub starts it (see hubdash.dashboard.app)."""

if __name__ == "__main__":
    from hubdash.dashboard.app import main

    main()
