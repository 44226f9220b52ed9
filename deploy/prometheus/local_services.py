"""The local services of scripts/services, as the live test uses them: a queue of its own on
LocalStack's SQS (JSON protocol, unsigned, as scripts/services calls it), a PostgreSQL schema
of its own, and PostgreSQL outages (`scripts/services stop-pg` / `start-pg`)."""

import json
import os
import subprocess
import urllib.request


def env(name):
    value = os.environ.get(name)
    if not value:
        raise AssertionError(f"{name} is not set: run under eval \"$(scripts/services env)\"")
    return value


def sqs(action, **body):
    request = urllib.request.Request(
        env("MASKFLOW_SQS_ENDPOINT"), data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"AmazonSQS.{action}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def create_queue(name):
    return sqs("CreateQueue", QueueName=name)["QueueUrl"]


def run(command, **extra):
    """Runs a command quietly; its output is shown only if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, **extra)
    if done.returncode:
        raise AssertionError(f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}{done.stderr}")


def services(*args):
    """scripts/services COMMAND: stop-pg, start-pg."""
    run([env("MASKFLOW_SERVICES"), *args])


def psql(sql):
    run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", env("DATABASE_URL"), "-c", sql],
        env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"})
