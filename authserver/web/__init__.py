"""Flask blueprints, one per audience: oauth (PC clients), mobile (the app), api (a resource
server), admin_api and admin_console (admins), pages (the PC login page) and verification (the
verification URI, for people approving in a browser); browser.py holds what every HTML page
shares (headers, cookies, CSRF)."""
