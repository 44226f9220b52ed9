"""The original design maskflow replaces, kept faithfully as a baseline: for every message one
`awslocal sqs receive-message` subprocess, AES masking in Python, one INSERT and one COMMIT per
row. Like the original it never deletes: messages are received with a 12-hour visibility
timeout so that none comes back during the run (a delete would be a second subprocess).

Prints {"messages", "rows", "seconds", "msg_per_s"} as JSON.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import psycopg

from common import DDL, INSERT, Masker, row

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--queue-url", required=True)
parser.add_argument("--database-url", required=True)
parser.add_argument("--key-file", required=True)
parser.add_argument("--messages", type=int, required=True)
args = parser.parse_args()

masker = Masker(args.key_file)
awslocal = os.path.join(os.path.dirname(sys.executable), "awslocal")  # the bench venv's
conn = psycopg.connect(args.database_url)
conn.execute(DDL)
conn.commit()
received = rows = 0
started = time.monotonic()
while received < args.messages:
    out = subprocess.run([awslocal, "sqs", "receive-message", "--queue-url", args.queue_url,
                          "--max-number-of-messages", "1", "--visibility-timeout", "43200",
                          "--attribute-names", "SentTimestamp"],
                         capture_output=True, text=True, check=True).stdout
    messages = json.loads(out).get("Messages", []) if out.strip() else []
    if not messages:
        break
    message = messages[0]
    received += 1
    values = row(masker, message["Body"], message["Attributes"]["SentTimestamp"])
    if values is not None:
        conn.execute(INSERT, values)
        conn.commit()
        rows += 1
seconds = time.monotonic() - started
print(json.dumps({"messages": received, "rows": rows, "seconds": seconds, "msg_per_s": received / seconds}))
