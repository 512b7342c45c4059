#!/bin/sh
# MinIO's root credentials become SeaweedFS's one admin identity (a file only this process reads), then `weed`
# runs with the arguments given, plus -s3.config.
#
# A replacement pod can start while the killed one's process still holds the filer's LevelDB locks on the same
# claim (a pod deleted with no grace period is gone from the API before its process is): weed would exit with
# "resource temporarily unavailable" and restart once. So wait (up to 60 s) until every LOCK under -dir is free.
set -eu
if [ -z "${MINIO_ROOT_USER:-}" ] || [ -z "${MINIO_ROOT_PASSWORD:-}" ]; then
  echo "s3: MINIO_ROOT_USER and MINIO_ROOT_PASSWORD must be set (no anonymous S3)" >&2
  exit 1
fi
conf=$(mktemp -d)/identities.json
umask 077
python3 - "$conf" "$@" <<'PY'
import fcntl, glob, json, os, sys, time
ident = {"name": "admin", "credentials": [{"accessKey": os.environ["MINIO_ROOT_USER"],
                                           "secretKey": os.environ["MINIO_ROOT_PASSWORD"]}],
         "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
json.dump({"identities": [ident]}, open(sys.argv[1], "w"))
data = next((a.split("=", 1)[1] for a in sys.argv[2:] if a.startswith("-dir=")), None)
deadline = time.monotonic() + 60
for lock in glob.glob(os.path.join(data, "**", "LOCK"), recursive=True) if data else []:
    while True:
        with open(lock, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what LevelDB (goleveldb) takes
                fcntl.flock(f, fcntl.LOCK_UN)
                break
            except OSError:
                if time.monotonic() > deadline:
                    print(f"s3: {lock} still locked after 60 s; starting anyway", file=sys.stderr)
                    break
                time.sleep(0.2)
PY
exec weed "$@" "-s3.config=$conf"
