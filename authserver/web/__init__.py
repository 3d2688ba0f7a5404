"""Flask blueprints, one per audience: oauth (PC clients), mobile (the app), pages (people)."""
