"""Who may do what: API keys and roles (``auth``, ``store``), client tokens (``tokens``) and rate
limits (``ratelimit``)."""
