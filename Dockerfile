FROM python:3.12-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir '.[uvloop]' fastapi uvicorn
ENV PYTHONUNBUFFERED=1
