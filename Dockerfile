# The relay job's image (Cloud Run Job): `python main.py`, one run, then exit (CONTRACT §2).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY main.py ./
COPY function/ ./function/

RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin relayer
USER relayer

CMD ["python", "main.py"]
