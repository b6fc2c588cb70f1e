"""The Lua sources of every script the service runs (loaded by ``agent_sessions.redis.scripts``).
Each file's header names its KEYS, ARGV and the keys it touches; each binds KEYS and ARGV to named
locals at its top."""
