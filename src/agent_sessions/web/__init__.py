"""HTTP edge: the Starlette app, its routes and the error mapping."""
