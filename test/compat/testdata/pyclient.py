#!/usr/bin/python3
"""kafka-python client for Switchyard's compatibility tests (python_test.go).

Run it with /usr/bin/python3: Debian's python3-kafka (kafka-python 2.0.2)
is installed for that interpreter only.

  pyclient.py produce BOOTSTRAP TOPIC N [FROM]
      writes records FROM..N-1 (FROM defaults to 0) in order, key
      "key-<i%97>", value "%08d" % i (the formulas of recordKey/recordValue
      in helpers_test.go), acks=all, then flushes.
  pyclient.py topics BOOTSTRAP
      prints the topics the cluster lists, one per line, sorted.
  pyclient.py consume BOOTSTRAP TOPIC GROUP N TIMEOUT_S
      consumes in consumer group GROUP from the earliest offset until N
      records were seen, commits synchronously, closes, and prints one
      "partition<TAB>offset<TAB>key<TAB>value" line per record.
  pyclient.py groups BOOTSTRAP GROUP...
      with KafkaAdminClient: asks every broker for its groups on its own
      (list_consumer_groups(broker_ids=[b])) and prints "listed<TAB>broker
      <TAB>group" per listing, then "coordinator<TAB>group<TAB>broker" and
      "member<TAB>group<TAB>client id<TAB>client host" for each GROUP.
  pyclient.py brokerconfig BOOTSTRAP BROKER NAME
      with KafkaAdminClient.describe_configs, reads broker BROKER's config
      NAME (kafka-python sends it to node BROKER) and prints its value.

No api_version is passed: kafka-python probes the broker (ApiVersions,
then infers a broker version from the advertised ranges) exactly as it
does for a real user, so the probe goes through the proxy too.

Exit status is 0 on success, non-zero (with a message on stderr) on error
or when TIMEOUT_S passes first.
"""

import logging
import os
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType


def produce(bootstrap, topic, n, first=0):
    # kafka-python 2.0.2 has no idempotent producer (enable_idempotence came
    # in 2.1); with max_in_flight_requests_per_connection=1 and retries the
    # per-partition order still holds, which checkConsumed verifies.
    producer = KafkaProducer(
        bootstrap_servers=[bootstrap],
        client_id="pyclient-producer",
        acks="all",
        retries=5,
        max_in_flight_requests_per_connection=1,
        linger_ms=5,
    )
    log = logging.getLogger("pyclient")
    log.info("producer connected, broker api_version %s", producer.config["api_version"])
    futures = []
    for i in range(first, n):
        key = ("key-%d" % (i % 97)).encode()
        value = ("%08d" % i).encode()
        futures.append(producer.send(topic, key=key, value=value))
    producer.flush(timeout=60)
    for f in futures:
        f.get(timeout=0)  # raises the delivery error, if any
    producer.close(timeout=10)
    print("produced %d" % (n - first), file=sys.stderr)


def consume(bootstrap, topic, group, n, timeout_s):
    deadline = time.monotonic() + timeout_s
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=[bootstrap],
        client_id="pyclient-consumer",
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    log = logging.getLogger("pyclient")
    log.info("consumer connected, broker api_version %s", consumer.config["api_version"])
    lines = []
    while len(lines) < n:
        if time.monotonic() > deadline:
            print("timed out after %ss with %d of %d records" % (timeout_s, len(lines), n), file=sys.stderr)
            consumer.close(autocommit=False)
            sys.exit(3)
        batches = consumer.poll(timeout_ms=500)
        for tp, msgs in batches.items():
            for m in msgs:
                key = m.key.decode() if m.key is not None else ""
                value = m.value.decode() if m.value is not None else ""
                lines.append("%d\t%d\t%s\t%s\n" % (m.partition, m.offset, key, value))
    # Commit the consumed positions synchronously, then leave the group.
    consumer.commit()
    consumer.close(autocommit=False)
    sys.stdout.write("".join(lines))
    sys.stdout.flush()


def topics(bootstrap):
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], client_id="pyclient-topics")
    names = sorted(consumer.topics())
    consumer.close()
    sys.stdout.write("".join(n + "\n" for n in names))
    sys.stdout.flush()


def groups(bootstrap, names):
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap], client_id="pyclient-admin")
    lines = []
    # list_consumer_groups() asks every broker but merges into a set, which
    # would hide a group listed twice: ask each broker on its own.
    for b in sorted(broker.nodeId for broker in admin._client.cluster.brokers()):
        for g in admin.list_consumer_groups(broker_ids=[b]):
            lines.append("listed\t%d\t%s\n" % (b, g[0]))
    for g, node in sorted(admin._find_coordinator_ids(names).items()):
        lines.append("coordinator\t%s\t%d\n" % (g, node))
    for info in admin.describe_consumer_groups(names):
        for m in info.members:
            lines.append("member\t%s\t%s\t%s\n" % (info.group, m.client_id, m.client_host))
    admin.close()
    sys.stdout.write("".join(lines))
    sys.stdout.flush()


def brokerconfig(bootstrap, broker, name):
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap], client_id="pyclient-admin")
    res = ConfigResource(ConfigResourceType.BROKER, broker, configs={name: None})
    found = None
    for resp in admin.describe_configs([res]):
        for code, msg, _typ, rname, entries in resp.resources:
            if code != 0:
                raise SystemExit("broker %s: error %d %s" % (rname, code, msg))
            for e in entries:
                if e[0] == name:
                    found = e[1]
    admin.close()
    if found is None:
        raise SystemExit("broker %s has no config %s" % (broker, name))
    sys.stdout.write(found + "\n")
    sys.stdout.flush()


def main(argv):
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("PYCLIENT_LOG", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if len(argv) >= 5 and argv[1] == "produce":
        produce(argv[2], argv[3], int(argv[4]), int(argv[5]) if len(argv) > 5 else 0)
    elif len(argv) >= 3 and argv[1] == "topics":
        topics(argv[2])
    elif len(argv) >= 4 and argv[1] == "groups":
        groups(argv[2], argv[3:])
    elif len(argv) == 5 and argv[1] == "brokerconfig":
        brokerconfig(argv[2], argv[3], argv[4])
    elif len(argv) >= 7 and argv[1] == "consume":
        consume(argv[2], argv[3], argv[4], int(argv[5]), float(argv[6]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
