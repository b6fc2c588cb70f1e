# One image for every role: `agent-sessions serve` (API) or `agent-sessions worker` (relay + actors).
# The base image and every Python dependency are pinned (constraints.txt), so a rebuild installs what
# was tested.
FROM python:3.11.10-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
RUN pip install --no-cache-dir -c constraints.txt . && useradd --system --no-create-home app
USER app
EXPOSE 8000
CMD ["agent-sessions", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
