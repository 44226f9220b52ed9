"""What a Python user would write instead of maskflow: boto3 with 10 messages per receive,
AES-SIV masking, the batch's rows inserted with `executemany` in one transaction, then one
DeleteMessageBatch; `--concurrency` threads, each with its own client and connection.
Runs until the queue is empty (visible and in flight).

Prints {"messages", "rows", "seconds", "msg_per_s"} as JSON.
"""
import argparse
import json
import threading
import time

import boto3
import psycopg

from common import DDL, INSERT, Masker, row

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--queue-url", required=True)
parser.add_argument("--database-url", required=True)
parser.add_argument("--key-file", required=True)
parser.add_argument("--endpoint-url", required=True)
parser.add_argument("--concurrency", type=int, default=1)
args = parser.parse_args()

masker = Masker(args.key_file)
with psycopg.connect(args.database_url) as setup:
    setup.execute(DDL)
counts = {"messages": 0, "rows": 0}
lock = threading.Lock()
failures = []


def consume():
    try:
        sqs = boto3.session.Session().client("sqs", endpoint_url=args.endpoint_url, region_name="us-east-1")
        with psycopg.connect(args.database_url) as conn:
            while True:
                messages = sqs.receive_message(QueueUrl=args.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                               MessageSystemAttributeNames=["SentTimestamp"]).get("Messages", [])
                if not messages:
                    attrs = sqs.get_queue_attributes(QueueUrl=args.queue_url, AttributeNames=[
                        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
                    if attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0":
                        return
                    continue
                rows = [r for m in messages if (r := row(masker, m["Body"], m["Attributes"]["SentTimestamp"]))]
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(INSERT, rows)
                sqs.delete_message_batch(QueueUrl=args.queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
                with lock:
                    counts["messages"] += len(messages)
                    counts["rows"] += len(rows)
    except Exception as e:  # reported below; a benchmark with a dead thread is void
        failures.append(repr(e))


started = time.monotonic()
threads = [threading.Thread(target=consume) for _ in range(args.concurrency)]
for t in threads:
    t.start()
for t in threads:
    t.join()
seconds = time.monotonic() - started
if failures:
    raise SystemExit(f"boto3 consumer failed: {failures[0]}")
print(json.dumps({**counts, "seconds": seconds, "msg_per_s": counts["messages"] / seconds}))
