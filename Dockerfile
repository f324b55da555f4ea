# One image for the three services: `taskstream core|executor|monitor`.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY handlers handlers
COPY core core
COPY executor executor
COPY monitor monitor
COPY taskstream taskstream
RUN pip install '.[postgres]'
RUN useradd --create-home taskstream \
    && mkdir -p /run/taskstream && chown taskstream /run/taskstream && chmod 700 /run/taskstream
USER taskstream
WORKDIR /home/taskstream
ENTRYPOINT ["taskstream"]
