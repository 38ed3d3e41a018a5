"""Apps used by the test suite's workers. Each reads FENNEL_REDIS_URL from the environment."""
