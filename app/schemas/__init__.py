"""Request and response bodies, one module per router in ``app/routes/`` (``common``: what
they share); their constraints are the API's input validation."""
