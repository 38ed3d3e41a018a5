# The image behind compose.yaml: Fennel with uvloop, plus the example FastAPI app.
#   docker build -t fennel .
FROM python:3.12.8-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package first, the examples after: editing an example does not reinstall everything.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install '.[uvloop]' 'uvloop==0.23.0' 'fastapi==0.165.0' 'uvicorn==0.54.0'
COPY examples ./examples

# Workers and the web app never need root.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin fennel
USER fennel

CMD ["fennel", "--help"]
