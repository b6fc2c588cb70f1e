# One image for every role: `agent-sessions serve` (API) or `agent-sessions worker` (relay + actors).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && useradd --system --no-create-home app
USER app
EXPOSE 8000
CMD ["agent-sessions", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
