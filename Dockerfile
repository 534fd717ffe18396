# syntax=docker/dockerfile:1
# One image for every role of Retail Connect; the command picks it:
#   retail api | retail worker | retail simulators   (see docker-compose.yml)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# Pinned dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# Then the project itself, without re-resolving anything the lock already pinned.
COPY . ./
RUN pip install --no-deps . && rm -rf build ./*.egg-info

# Never run as root. The store defaults to SQLite under RETAIL_DATA_DIR; compose sets
# DATABASE_URL to PostgreSQL instead.
RUN useradd --create-home --uid 10001 --user-group retail
USER retail
WORKDIR /home/retail
ENV RETAIL_DATA_DIR=/home/retail/.data \
    RETAIL_API_HOST=0.0.0.0

EXPOSE 8000
CMD ["retail", "api"]
