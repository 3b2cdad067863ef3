"""Model requests, answer distributions, providers and the engine that runs them."""
