#!/usr/bin/python3
"""kafka-python client for the listener security tests (clients_test.go).

Run it with /usr/bin/python3 (Debian's python3-kafka, kafka-python 2.0.2).

  secclient.py BOOTSTRAP CAFILE MECHANISM USER PASSWORD TOPIC GROUP N
      over SASL_SSL with MECHANISM, produces N records (value "%08d" % i),
      then consumes them in consumer group GROUP from the earliest offset,
      commits synchronously and prints "consumed N".

The password is read from the environment variable SECCLIENT_PASSWORD when
PASSWORD is "-", so it does not show in the process list.
"""

import os
import sys
import time

from kafka import KafkaConsumer, KafkaProducer


def main():
    bootstrap, cafile, mech, user, password, topic, group, n = sys.argv[1:9]
    if password == "-":
        password = os.environ["SECCLIENT_PASSWORD"]
    n = int(n)
    common = dict(
        bootstrap_servers=[bootstrap],
        security_protocol="SASL_SSL",
        ssl_cafile=cafile,
        sasl_mechanism=mech,
        sasl_plain_username=user,
        sasl_plain_password=password,
    )
    producer = KafkaProducer(acks="all", retries=5, max_in_flight_requests_per_connection=1, **common)
    for i in range(n):
        producer.send(topic, value=b"%08d" % i)
    producer.flush(timeout=30)
    producer.close(timeout=10)

    consumer = KafkaConsumer(
        topic,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **common,
    )
    seen = set()
    deadline = time.time() + 60
    while len(seen) < n:
        if time.time() > deadline:
            print("timed out after %d of %d records" % (len(seen), n), file=sys.stderr)
            sys.exit(1)
        for tp, records in consumer.poll(timeout_ms=1000).items():
            for r in records:
                seen.add(r.value)
    consumer.commit()
    consumer.close()
    print("consumed %d" % len(seen))


if __name__ == "__main__":
    main()
