"""One measurement of the Python library sqlite-s3vfs (PyPI) in a fresh process, like bench/job.ts.

    .venv/bin/python bench/py_job.py '<json job>'

The job carries the SQL (from bench/workloads.ts) so both sides run the same statements. Prints one
JSON line: {"ms", "rssMb", "result"}.
"""
import json
import os
import resource
import sys
import time

import apsw
import boto3
import sqlite_s3vfs
from botocore.config import Config

job = json.loads(sys.argv[1])
sql = job["sql"]
s3 = boto3.resource(
    "s3",
    endpoint_url=job["endpoint"],
    region_name="us-east-1",
    config=Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"},
        max_pool_connections=64,
    ),
)
vfs = sqlite_s3vfs.S3VFS(bucket=s3.Bucket(job["bucket"]), block_size=job["blockSize"])
timed = None


def connect():
    return apsw.Connection(job["prefix"], vfs=vfs.name)


def one(db, query, params=()):
    return db.execute(query, params).fetchall()[0]


# Not `with connect()`: apsw's context manager wraps the block in a transaction of its own.
def bulk():
    db = connect()
    db.execute(sql["schema"])
    db.execute("BEGIN; " + sql["bulk"] + "; COMMIT")
    db.close()
    return "ok"


def commits():
    db = connect()
    for i in range(job["commits"]):
        db.execute(sql["commit"], (f"commit-{i}", os.urandom(50).hex()))
    db.close()
    return job["commits"]


def scan():
    return list(one(connect(), sql["scan"]))


def warm():
    global timed
    db = connect()
    one(db, sql["scan"])
    t0 = time.perf_counter()
    found = sum(1 for i in job["ids"] if db.execute(sql["point"], (i,)).fetchall())
    timed = (time.perf_counter() - t0) * 1000
    return found


def serialize():
    return sum(len(c) for c in vfs.serialize_iter(job["prefix"]))


def deserialize():
    def chunks():
        with open(job["file"], "rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk

    vfs.deserialize_iter(job["prefix"], chunks())
    return os.path.getsize(job["file"])


def pk():
    return list(one(connect(), sql["bigByPk"], (job["id"],)))


def index():
    return list(one(connect(), sql["bigByIndex"], (job["key"],)))


WORKLOADS = {
    "bulk": bulk,
    "commits": commits,
    "scan": scan,
    "warm": warm,
    "serialize": serialize,
    "deserialize": deserialize,
    "import": deserialize,
    "pk": pk,
    "index": index,
}

try:
    t0 = time.perf_counter()
    result = WORKLOADS[job["workload"]]()
    ms = timed if timed is not None else (time.perf_counter() - t0) * 1000
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"ms": ms, "rssMb": rss_mb, "result": result}))
except Exception as e:  # reported to the runner, which records the failure
    print(json.dumps({"error": repr(e)}))
    sys.exit(1)
