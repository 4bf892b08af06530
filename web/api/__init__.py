"""REST routes, one module per noun."""
