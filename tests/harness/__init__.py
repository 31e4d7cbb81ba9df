"""Private PostgreSQL, Redis and pgcohered processes for tests and the sandbox."""
