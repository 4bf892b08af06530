"""Service functions: the only place with business rules. Keyword-only, session passed in."""
